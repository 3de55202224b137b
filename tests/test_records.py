"""Typed records: report.json as a RunReport, written by a run and read back (by msaug compare) unchanged."""

from __future__ import annotations

import json

import pytest
import yaml

from msaug.errors import ConfigError
from msaug.pipeline.records import Evaluation, RunReport, read_run_report
from msaug.pipeline.runner import RunOptions, run_pipeline
from tests.conftest import CLASSIC, write_folder_dataset

SEGMENTER = ["evaluate.segmenter.steps=2", "evaluate.segmenter.batch_size=4", "evaluate.protocols=[real,synth]"]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A small run of the classic pipeline with its evaluate block (made once): (run folder, the dict run_pipeline returned)."""
    base = tmp_path_factory.mktemp("records")
    write_folder_dataset(base / "data")
    path = base / "classic.yaml"
    path.write_text(yaml.safe_dump({**CLASSIC, "evaluate": {}}, sort_keys=False))
    out = base / "run"
    returned = run_pipeline(path, RunOptions(out=out, profile="quick", sets=SEGMENTER, seed=3, show_progress=False))
    return out, returned


def test_a_written_report_reads_back_typed_and_writes_the_same_file(evaluated_run, tmp_path):
    out, returned = evaluated_run
    text = (out / "report.json").read_text()
    report = read_run_report(out / "report.json")
    assert isinstance(report, RunReport) and isinstance(report.evaluation, Evaluation)
    # typed attributes hold what the file holds
    on_disk = json.loads(text)
    assert report.pipeline == on_disk["pipeline"] == "shapes-classic" and report.profile == "quick"
    assert report.sets == [*SEGMENTER, "seed=3", "generate.seed=3"]  # --seed reaches the config as overrides, listed as --set
    assert report.data.classes == ["background", "disc", "square"] and report.data.encoding == "index"
    assert [s.name for s in report.stages] == [s["name"] for s in on_disk["stages"]]
    assert report.generate.count == on_disk["generate"]["count"] > 0
    dice = on_disk["evaluation"]["protocols"]["synth"]["metrics"]["mean"]["dice"]["mean"]
    assert report.evaluation.mean("synth", "dice") == dice and report.evaluation.mean("mix", "dice") is None
    square = on_disk["evaluation"]["protocols"]["real"]["metrics"]["classes"]["square"]["dice"]["mean"]
    assert report.evaluation.class_mean("real", "square", "dice") == square
    # nothing is added, dropped, reordered or rewritten (1 stays 1, not 1.0; absent keys stay absent)
    assert report.to_json() == on_disk == returned
    again = tmp_path / "again.json"
    report.write(again)
    assert again.read_text() == text


def test_a_report_without_evaluation_has_no_evaluation_key(classic_yaml, tmp_path):
    out = tmp_path / "plain"
    run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", show_progress=False))
    report = read_run_report(out / "report.json")
    assert report.evaluation is None and "evaluation" not in report.to_json()
    assert all(s.budget is not None for s in report.stages)


def test_a_missing_or_broken_report_is_a_config_error_naming_the_file(evaluated_run, tmp_path):
    out, _ = evaluated_run
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'nowhere.json'}: file not found; expected a run report"):
        read_run_report(tmp_path / "nowhere.json")
    cut = tmp_path / "cut.json"
    cut.write_text((out / "report.json").read_text()[:200])  # a file cut short
    with pytest.raises(ConfigError, match=rf"{cut}: not valid JSON"):
        read_run_report(cut)
    data = json.loads((out / "report.json").read_text())
    data["stages"][0]["budget"]["steps"] = "many"
    del data["generate"]["count"]
    data["extra"] = 1
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        read_run_report(wrong)
    message = str(err.value)
    assert message.startswith(f"{wrong}: not a run report")
    assert "stages[0].budget.steps: Input should be a valid integer" in message and "'many'" in message
    assert "generate.count: Field required" in message and "extra: Extra inputs are not permitted" in message
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ConfigError, match="folder.json: cannot read a run report"):
        read_run_report(tmp_path / "folder.json")


def test_compare_keeps_a_typed_seed_run_and_summarizes_it(evaluated_run, tmp_path):
    from msaug.bench.compare import CostFigures, ProcessFigures, SeedRun, read_seed_run, summarize_arm

    out, _ = evaluated_run
    report = read_run_report(out / "report.json")
    run = SeedRun(arm="classic", seed=0, pipeline="classic.yaml", process=ProcessFigures(wall_seconds=1.5, peak_rss_mb=300.0),
                  report=report, evaluation=report.evaluation,
                  cost=CostFigures(parameters={"lab2im": 9}, parameters_total=9, flops_per_pair=10.0, cuda_max_allocated_mb=None))
    run.write(tmp_path / "seed-0.json")
    back = read_seed_run(tmp_path / "seed-0.json")
    assert back == run and back.report.to_json() == report.to_json()
    summary = summarize_arm([run, back], ["real", "synth"])
    dice = summary["quality"]["synth"]["dice"]
    assert dice["n"] == 2 and dice["mean"] == pytest.approx(report.evaluation.mean("synth", "dice"))
    assert set(summary["quality"]["real"]["dice_per_class"]) == set(report.evaluation.protocols["real"].metrics.classes)
    assert summary["cost"]["train_seconds"]["mean"] == pytest.approx(sum(s.seconds or 0 for s in report.stages))
    assert summary["cost"]["parameters"] == 9 and summary["cost"]["peak_rss_mb"]["values"] == [300.0, 300.0]
    assert summary["realism"]["qc_mean_dice"]["mean"] == pytest.approx(report.evaluation.qc.mean_dice)
    assert summary["resolution"] == report.evaluation.resolution.description
    (tmp_path / "seed-1.json").write_text(json.dumps({"arm": "classic", "seed": "one"}))
    with pytest.raises(ConfigError, match=r"seed-1.json: not an msaug compare seed record .*seed: Input should be a valid integer"):
        read_seed_run(tmp_path / "seed-1.json")


def test_an_evaluated_run_pairs_each_protocol_with_real_image_by_image(evaluated_run):
    out, returned = evaluated_run
    evaluation = json.loads((out / "evaluation" / "evaluation.json").read_text())
    real, synth = (evaluation["protocols"][p]["metrics"]["per_image_dice"] for p in ("real", "synth"))
    assert len(real) == len(synth) == evaluation["pairs"]["test"]
    paired = evaluation["paired"]["synth"]
    assert paired["images"] == len(real) and paired["better"] + paired["worse"] + paired["tied"] == len(real)
    assert paired["mean_difference"] == pytest.approx(sum(synth) / len(synth) - sum(real) / len(real))
    assert returned["evaluation"]["paired"] == evaluation["paired"]
    assert "**Paired against `real`**" in (out / "report.md").read_text()


@pytest.mark.slow  # a child process loading the run's segmenters: about 20 s on a loaded 2-core machine
def test_paired_rescore_recovers_the_per_image_scores_of_a_run_written_without_them(evaluated_run, tmp_path):
    """benchmarks/paired_rescore.py on a copy whose evaluation.json lacks them, as runs before they were kept."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    out, _ = evaluated_run
    old = tmp_path / "old-run"
    shutil.copytree(out, old)
    path = old / "evaluation" / "evaluation.json"
    evaluation = json.loads(path.read_text())
    kept = {p: r["metrics"].pop("per_image_dice") for p, r in evaluation["protocols"].items()}
    expected = evaluation.pop("paired")
    path.write_text(json.dumps(evaluation))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    figures = tmp_path / "paired.json"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "paired_rescore.py"), str(old), "--json", str(figures)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=old.parent)
    assert done.returncode == 0, done.stderr
    assert "synth mean Dice" in done.stdout and "**Paired against `real`**" in done.stdout
    result = json.loads(figures.read_text())[str(old)]
    assert set(result["per_image_dice"]) == set(kept) == {"real", "synth"}
    for protocol, scores in kept.items():  # the run's own scores, recomputed from its checkpoints
        assert result["per_image_dice"][protocol] == pytest.approx(scores, abs=1e-6)
    again = result["paired"]["synth"]
    assert again["ci95"] == pytest.approx(expected["synth"]["ci95"], abs=1e-6)
    for key in ("images", "better", "worse", "tied"):
        assert again[key] == expected["synth"][key]
    assert again["mean_difference"] == pytest.approx(expected["synth"]["mean_difference"], abs=1e-6)
    # a checkpoint that no longer gives the reported figures is refused, not silently rescored
    evaluation["protocols"]["synth"]["metrics"]["mean"]["dice"]["mean"] += 0.1
    path.write_text(json.dumps(evaluation))
    bad = subprocess.run([sys.executable, str(root / "benchmarks" / "paired_rescore.py"), str(old)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=old.parent)
    assert bad.returncode != 0 and "synth rescored to mean Dice" in bad.stderr
