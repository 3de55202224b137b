"""RunFolder, the run folder's layout and status, on folders built by hand (no run, no training).

The runs that exercise it end to end (resume, overwrite, foreign folders) are in
tests/test_run_folder.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from msaug.errors import ConfigError
from msaug.io import sha256_file
from msaug.pipeline.composer import ComposedStage
from msaug.pipeline.runfolder import OWNED, RunFolder, StageFolder, stage_folder_name


def finished_stage(folder: Path, weights: bytes = b"weights", complete: bool = True) -> StageFolder:
    """A stage folder as the runner leaves it: stage.safetensors, then stage.json holding its sha256."""
    folder.mkdir(parents=True)
    (folder / "stage.safetensors").write_bytes(weights)
    info = {"name": folder.name.split("-", 1)[1], "sha256": sha256_file(folder / "stage.safetensors"), "complete": complete}
    (folder / "stage.json").write_text(json.dumps(info))
    return StageFolder(folder)


def test_every_path_of_a_run_lies_where_the_runner_writes_it(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert run.marker == tmp_path / "run" / ".msaug-run"
    assert run.resolved == tmp_path / "run" / "pipeline.resolved.yaml"
    assert run.split == tmp_path / "run" / "split.json"
    assert run.stages == tmp_path / "run" / "stages"
    assert run.synthetic == tmp_path / "run" / "synthetic"
    assert run.manifest == tmp_path / "run" / "synthetic" / "manifest.jsonl"
    assert run.evaluation == tmp_path / "run" / "evaluation"
    assert (run.report_json, run.report_md, run.grid) == tuple(tmp_path / "run" / n for n in ("report.json", "report.md", "grid.png"))
    stage = run.stage("02-image")
    assert stage.path == tmp_path / "run" / "stages" / "02-image"
    assert stage.weights == stage.path / "stage.safetensors" and stage.info_file == stage.path / "stage.json"
    assert stage.metrics == stage.path / "metrics.jsonl" and stage.losses == stage.path / "losses.png"
    assert stage.run == run
    # the names --overwrite deletes are exactly the top-level paths above (the marker stays)
    assert sorted(OWNED) == sorted(p.name for p in (run.resolved, run.split, run.stages, run.synthetic, run.evaluation,
                                                     run.report_json, run.report_md, run.grid))
    assert not (tmp_path / "run").exists()  # naming the paths writes nothing


def test_a_run_folder_from_a_string_is_the_same_as_from_a_path(tmp_path):
    assert RunFolder(str(tmp_path)) == RunFolder(tmp_path)
    assert isinstance(RunFolder(str(tmp_path)).root, Path)


def test_stage_folders_are_named_by_position_and_name_as_the_composer_names_them():
    assert stage_folder_name(0, "mask") == "01-mask"
    assert stage_folder_name(11, "image") == "12-image"
    composed = ComposedStage(index=2, name="upscale", use="gan.label_upscaler", stage=None)  # type: ignore[arg-type]
    assert composed.folder == "03-upscale"


def test_a_stage_is_complete_only_when_its_stage_json_says_so(tmp_path):
    run = RunFolder(tmp_path)
    assert not run.stage("01-mask").complete()  # no folder at all
    (run.stages / "01-mask").mkdir(parents=True)
    (run.stages / "01-mask" / "stage.safetensors").write_bytes(b"weights")
    assert not run.stage("01-mask").complete()  # weights without stage.json: killed before it was written
    assert finished_stage(run.stages / "02-image").complete()
    assert not finished_stage(run.stages / "03-half", complete=False).complete()
    broken = run.stages / "04-broken"
    broken.mkdir()
    (broken / "stage.json").write_text('{"complete": tr')  # cut short
    assert not run.stage("04-broken").complete()


def test_weights_problem_names_a_missing_or_changed_weights_file(tmp_path):
    stage = finished_stage(tmp_path / "stages" / "01-mask")
    info = stage.read_info()
    assert stage.weights_problem(info) is None
    stage.weights.write_bytes(b"other weights")
    assert stage.weights_problem(info) == "sha256 does not match stage.json; the file was changed or damaged"
    stage.weights.unlink()
    assert stage.weights_problem(info) == "missing, though stage.json says the stage finished"


def test_a_stage_has_a_checkpoint_when_the_trainer_left_its_state(tmp_path):
    stage = StageFolder(tmp_path / "01-image")
    assert not stage.has_checkpoint
    (stage.path / "checkpoint").mkdir(parents=True)
    assert not stage.has_checkpoint  # an empty folder is not a checkpoint
    (stage.path / "checkpoint" / "state.json").write_text("{}")
    assert stage.has_checkpoint


def test_stage_folders_lists_those_with_a_stage_json_in_order(tmp_path):
    run = RunFolder(tmp_path)
    finished_stage(run.stages / "02-image")
    finished_stage(run.stages / "01-mask")
    (run.stages / "03-upscale").mkdir()  # started, never finished
    assert [s.path.name for s in run.stage_folders()] == ["01-mask", "02-image"]
    assert RunFolder(tmp_path / "none").stage_folders() == []


def test_kind_tells_marked_legacy_and_foreign_folders_apart(tmp_path):
    marked = RunFolder(tmp_path / "marked")
    marked.root.mkdir()
    marked.write_marker("classic")
    assert marked.kind() == "marked"
    info = json.loads(marked.marker.read_text())
    assert info["format"] == 1 and info["pipeline"] == "classic" and info["created_by"].startswith("msaug ")

    legacy = RunFolder(tmp_path / "legacy")
    legacy.root.mkdir()
    legacy.resolved.write_text("# Resolved from pipelines/classic.yaml by msaug pipeline run\nname: classic\n")
    assert legacy.kind() == "legacy"

    foreign = RunFolder(tmp_path / "foreign")
    foreign.root.mkdir()
    assert foreign.kind() is None  # empty
    foreign.resolved.write_text("name: classic\n")  # a file of that name msaug did not write
    (foreign.root / "report.md").write_text("# my notes\n")
    assert foreign.kind() is None


def test_kind_refuses_a_marker_of_another_format(tmp_path):
    run = RunFolder(tmp_path)
    run.marker.write_text(json.dumps({"format": 99}))
    with pytest.raises(ConfigError, match=r"\.msaug-run: not a run-folder marker this msaug version wrote \(expected JSON with format <= 1\)"):
        run.kind()


def test_clear_deletes_only_the_names_a_run_owns(tmp_path):
    run = RunFolder(tmp_path / "run")
    finished_stage(run.stages / "01-mask")
    (run.synthetic / "images").mkdir(parents=True)
    (run.synthetic / "images" / "000000.png").write_bytes(b"png")
    run.evaluation.mkdir()
    for path in (run.resolved, run.split, run.report_json, run.report_md, run.grid):
        path.write_text("written by the run")
    (run.root / "notes.txt").write_text("mine")
    (run.root / "figures").mkdir()
    (run.root / "figures" / "a.png").write_bytes(b"mine too")

    notes = run.clear("classic")

    assert sorted(p.name for p in run.root.iterdir()) == [".msaug-run", "figures", "notes.txt"]
    assert (run.root / "figures" / "a.png").read_bytes() == b"mine too"
    assert run.kind() == "marked"
    assert notes == [f"--overwrite kept 2 file(s) msaug did not write in {run.root}: figures, notes.txt"]
    assert run.clear("classic") == [f"--overwrite kept 2 file(s) msaug did not write in {run.root}: figures, notes.txt"]


def test_claim_adopts_an_empty_folder_and_refuses_a_foreign_one(tmp_path):
    run = RunFolder(tmp_path / "new")
    assert run.claim("name: classic\n", "classic", resume=False, overwrite=False) == []
    assert run.kind() == "marked" and run.resolved.read_text() == "name: classic\n"
    # only the bookkeeping of a start that failed: the same command starts again
    assert run.claim("name: classic\n", "classic", resume=False, overwrite=False) == []
    run.stages.mkdir()
    with pytest.raises(ConfigError, match="pass --resume to continue that run or --overwrite to replace it"):
        run.claim("name: classic\n", "classic", resume=False, overwrite=False)

    foreign = RunFolder(tmp_path / "mine")
    foreign.root.mkdir()
    (foreign.root / "report.md").write_text("# my notes\n")
    with pytest.raises(ConfigError, match=r"--overwrite deletes nothing in it"):
        foreign.claim("name: classic\n", "classic", resume=False, overwrite=True)
    assert sorted(p.name for p in foreign.root.iterdir()) == ["report.md"]


def test_pairs_of_other_stage_weights_are_cleared_with_the_evaluation(tmp_path):
    run = RunFolder(tmp_path)
    run.synthetic.mkdir()
    run.evaluation.mkdir()
    line = {"index": 0, "image": "images/000000.png", "label": "labels/000000.png", "stages": {"01-mask": "aaaa", "02-image": "bbbb"}}
    run.manifest.write_text(json.dumps(line) + "\n")
    assert run.clear_pairs_of_other_weights({"01-mask": "aaaa", "02-image": "bbbb"}) is None
    assert run.synthetic.is_dir() and run.evaluation.is_dir()
    note = run.clear_pairs_of_other_weights({"01-mask": "aaaa", "02-image": "cccc"})
    assert note == (f"the pairs in {run.synthetic} were generated by other weights of 02-image (rebuilt since): "
                    "synthetic/ and evaluation/ are made again from the stages as they are now")
    assert not run.synthetic.exists() and not run.evaluation.exists()
    assert run.clear_pairs_of_other_weights({}) is None  # no pairs: nothing to do


def test_read_report_names_the_missing_file(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(str(run.report_json))):
        run.read_report()
