"""Run folders: msaug writes into, resumes and deletes only folders it created itself.

Each test reproduces a case of issue 15 (the number is in the docstring).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from msaug.cli import cli
from msaug.errors import CheckpointError, ConfigError, DataError
from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, generate_run, run_pipeline
from msaug.verify import verify_target
from tests.conftest import CLASSIC

MARKER = ".msaug-run"


def run(path: Path, out: Path | None, **kw) -> dict:
    return run_pipeline(path, RunOptions(out=out, profile="quick", show_progress=False, **kw))


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (folders by name), to show nothing changed."""
    return {str(p.relative_to(root)): (sha256_file(p) if p.is_file() else "dir") for p in sorted(root.rglob("*"))}


def pipeline_cli(*args: str):
    result = CliRunner().invoke(cli, ["pipeline", "run", *args, "--quiet"])
    assert "Traceback" not in result.output
    return result


def one_line(result) -> str:
    return " ".join(result.stderr.split())


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A researcher's own folder whose names happen to match what a run writes."""
    folder = tmp_path / "mine"
    (folder / "evaluation").mkdir(parents=True)
    (folder / "evaluation" / "scores.csv").write_text("case,dice\n1,0.9\n")
    (folder / "synthetic" / "images").mkdir(parents=True)
    (folder / "synthetic" / "images" / "a.png").write_bytes(b"not really a png")
    (folder / "report.md").write_text("# my notes\n")
    return folder


@pytest.mark.parametrize(
    ("flag", "says"),
    [("--overwrite", "--overwrite deletes nothing in it"), ("--resume", "--resume writes nothing into it")],
    ids=["case2-overwrite", "case3-resume"],
)
@pytest.mark.parametrize("folder", ["user_folder", "shapes_dir"])
def test_resume_and_overwrite_refuse_a_folder_msaug_did_not_create(classic_yaml, request, folder, flag, says):
    """Cases 2 and 3: --overwrite deleted the user's files there, --resume started a new run inside a dataset."""
    target = request.getfixturevalue(folder)
    before = tree(target)
    result = pipeline_cli(str(classic_yaml), "--out", str(target), flag)
    assert result.exit_code == 2, result.output
    message = one_line(result)
    assert f"--out {target}: not a run folder created by msaug" in message and says in message
    assert tree(target) == before


def test_plain_run_into_a_foreign_folder_suggests_no_flag_that_would_be_refused(classic_yaml, user_folder):
    before = tree(user_folder)
    result = pipeline_cli(str(classic_yaml), "--out", str(user_folder))
    assert result.exit_code == 2
    assert "not created by msaug" in one_line(result) and "--resume" not in one_line(result)
    assert tree(user_folder) == before


def test_run_folder_carries_a_marker_and_overwrite_deletes_only_what_msaug_wrote(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run(classic_yaml, out)
    marker = json.loads((out / MARKER).read_text())
    assert marker["format"] == 1 and marker["pipeline"] == "shapes-classic" and marker["created_by"].startswith("msaug ")
    (out / "notes.txt").write_text("keep me")
    (out / "stages" / "01-real_labels" / "stale.bin").write_bytes(b"x")
    run(classic_yaml, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "stages" / "01-real_labels" / "stale.bin").exists()
    assert (out / MARKER).is_file() and len(list((out / "synthetic/images").iterdir())) == 6


def test_old_run_folders_without_a_marker_resume(classic_yaml, tmp_path):
    """Run folders written before the marker existed are recognised by their resolved YAML and stages/."""
    out = tmp_path / "run"
    run(classic_yaml, out)
    (out / MARKER).unlink()
    (out / "synthetic/images/000003.png").unlink()
    run(classic_yaml, out, resume=True)
    assert (out / MARKER).is_file() and (out / "synthetic/images/000003.png").is_file()
    assert verify_target(str(out)).problems == []


def test_pipeline_name_must_be_a_plain_name(classic_yaml, tmp_path, monkeypatch):
    """Case 5: --set name=../../x wrote the run outside runs/; an empty name passed check."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    for bad in ("../../x", "", "a/b", ".."):
        for command in ("check", "run"):
            extra = ["--quiet"] if command == "run" else []
            result = CliRunner().invoke(cli, ["pipeline", command, str(classic_yaml), "--set", f"name={bad}", *extra])
            assert result.exit_code == 2, (bad, command, result.output)
            assert "name" in one_line(result) and "letters, digits" in one_line(result), one_line(result)
    assert tree(tmp_path) == before


def test_resume_after_changing_only_generate_and_evaluate_keeps_the_stages(classic_yaml, tmp_path):
    """Case 7: fixing the evaluate block (or asking for more pairs) must not retrain the stages."""
    cfg = yaml.safe_load(classic_yaml.read_text())
    cfg["evaluate"] = {"segmenter": {"arch": "unet"}}
    classic_yaml.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    run(classic_yaml, out, evaluate=False)
    stage_files = {p: p.stat().st_mtime_ns for p in (out / "stages").rglob("stage.*")}
    first_pairs = {p: p.stat().st_mtime_ns for p in (out / "synthetic/images").iterdir()}
    run(classic_yaml, out, evaluate=False, resume=True,
        sets=["evaluate.segmenter.arch=fpn", "generate.count=9", "description=fixed the segmenter"])
    assert {p: p.stat().st_mtime_ns for p in stage_files} == stage_files
    assert {p: p.stat().st_mtime_ns for p in first_pairs} == first_pairs  # the 6 pairs stay, 3 are added
    assert len(list((out / "synthetic/images").iterdir())) == 9
    resolved = yaml.safe_load((out / "pipeline.resolved.yaml").read_text())
    assert resolved["evaluate"]["segmenter"]["arch"] == "fpn" and resolved["generate"]["count"] == 9
    # fewer pairs: the extra pairs go, the manifest and the files agree
    run(classic_yaml, out, evaluate=False, resume=True, sets=["evaluate.segmenter.arch=fpn", "generate.count=4"])
    assert sorted(p.name for p in (out / "synthetic/images").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert sorted(p.name for p in (out / "synthetic/labels").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert verify_target(str(out)).problems == []


def test_resume_with_another_generation_seed_regenerates_every_pair(classic_yaml, tmp_path):
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    run(classic_yaml, out)
    run(classic_yaml, out, resume=True, sets=["generate.seed=7"])
    run(classic_yaml, fresh, sets=["generate.seed=7"])
    assert tree(out / "synthetic") == tree(fresh / "synthetic")


def test_resume_makes_pairs_of_rebuilt_stage_weights_again(classic_yaml, tmp_path):
    """A stage rebuilt under --resume may not reproduce its weights bit for bit; its old pairs are not kept (nor refused)."""
    out, fresh = tmp_path / "run", tmp_path / "fresh"
    run(classic_yaml, out)
    manifest = out / "synthetic" / "manifest.jsonl"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for entry in lines:
        entry["stages"]["03-lab2im"] = "0" * 16  # as if lab2im had been trained again since the pairs were made
    manifest.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))
    result = pipeline_cli(str(classic_yaml), "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    text = one_line(result)
    assert f"the pairs in {out / 'synthetic'} were generated by other weights of 03-lab2im (rebuilt since)" in text
    assert "synthetic/ and evaluation/ are made again" in text
    run(classic_yaml, fresh)
    assert tree(out / "synthetic") == tree(fresh / "synthetic")  # every pair made again, by the stages as they are


def test_resume_refusal_names_the_changed_key_only(classic_yaml, tmp_path):
    """Case 19: one changed stage param dumped both whole ``stages`` lists."""
    out = tmp_path / "run"
    run(classic_yaml, out)
    with pytest.raises(ConfigError) as info:
        run(classic_yaml, out, resume=True, sets=["stages.lab2im.params.noise=0.2"])
    message = str(info.value)
    assert "stages[2].params.noise: 0.01 -> 0.2" in message, message
    assert "use:" not in message and "real_labels" not in message and len(message) < 600
    assert "generate and evaluate blocks may change under --resume" in message


def gan_pipeline(tmp_path: Path) -> Path:
    cfg = {
        **CLASSIC,
        "profiles": {},
        "data": {**CLASSIC["data"], "size": 16},
        "stages": [
            {"use": "gan.label_generator", "params": {"size": 16, "width": 4, "batch_size": 4, "checkpoint_every": 2,
                                                      "sample_every": 1000, "log_every": 2}, "budget": {"steps": 4}},
            {"use": "core.lab2im"},
        ],
        "generate": {"count": 4, "batch_size": 4},
    }
    path = tmp_path / "gan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_deleted_stage_weights_are_rebuilt_from_the_checkpoint_on_resume(tmp_path, shapes_dir):
    """Case 15: a deleted stage.safetensors said "rerun with --overwrite", which would retrain every stage."""
    path = gan_pipeline(tmp_path)
    out = tmp_path / "run"
    run_pipeline(path, RunOptions(out=out, profile="none", show_progress=False))
    weights = out / "stages/01-label_generator/stage.safetensors"
    digest = sha256_file(weights)
    pairs = tree(out / "synthetic")
    weights.unlink()
    with pytest.raises(CheckpointError) as info:
        generate_run(out, 4, None, show_progress=False)
    message = str(info.value)
    assert f"{weights}: missing" in message and "--resume" in message and "--overwrite" not in message
    assert f"msaug pipeline run {out / 'pipeline.resolved.yaml'} --out {out} --resume" in message
    lab2im = out / "stages/02-lab2im/stage.safetensors"
    untouched = lab2im.stat().st_mtime_ns
    run_pipeline(path, RunOptions(out=out, profile="none", resume=True, show_progress=False))
    assert sha256_file(weights) == digest  # rebuilt from the final checkpoint, not retrained
    assert json.loads((out / "stages/01-label_generator/stage.json").read_text())["summary"]["resumed_from"] == 4
    assert lab2im.stat().st_mtime_ns == untouched
    assert tree(out / "synthetic") == pairs


def test_resume_regenerates_a_swapped_synthetic_file(classic_yaml, tmp_path):
    """Case 16: a swapped synthetic file was kept by --resume and only verify found it."""
    out = tmp_path / "run"
    run(classic_yaml, out)
    reference = tree(out / "synthetic")
    one, two = out / "synthetic/images/000001.png", out / "synthetic/labels/000004.png"
    one.write_bytes((out / "synthetic/images/000002.png").read_bytes())
    two.write_bytes(b"garbage")
    run(classic_yaml, out, resume=True)
    assert tree(out / "synthetic") == reference
    assert verify_target(str(out)).problems == []


def test_rerun_after_a_failed_start_is_not_refused(classic_yaml, tmp_path, monkeypatch):
    """Case 18: a run that failed on a data error before any work left a folder that refused the same command."""
    import msaug.pipeline.runner as runner

    out = tmp_path / "run"

    def fail(*args, **kwargs):
        raise DataError("case007.png: simulated data error at the start of training")

    with monkeypatch.context() as m:
        m.setattr(runner, "fit_stages", fail)
        with pytest.raises(DataError):
            run(classic_yaml, out)
    assert (out / "pipeline.resolved.yaml").is_file() and not (out / "stages").exists()
    run(classic_yaml, out)
    assert len(list((out / "synthetic/images").iterdir())) == 6


def test_rerun_into_an_old_folder_holding_only_the_resolved_yaml(classic_yaml, tmp_path):
    """Case 18 on a folder left by a version without the marker."""
    out = tmp_path / "run"
    run(classic_yaml, out)
    kept = (out / "pipeline.resolved.yaml").read_text()
    for entry in os.listdir(out):
        if entry != "pipeline.resolved.yaml":
            target = out / entry
            if target.is_dir():
                import shutil

                shutil.rmtree(target)
            else:
                target.unlink()
    assert kept.startswith("# Resolved from")
    run(classic_yaml, out)
    assert (out / MARKER).is_file() and (out / "report.json").is_file()
