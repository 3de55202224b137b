"""``msaug generate``: never shrinks a set, writes new sets with ``--out``, says how to continue."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from msaug.cli import cli
from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, run_pipeline
from msaug.verify import verify_target
from tests.conftest import CLASSIC, write_folder_dataset


def pngs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*.png"))}


def manifest_indices(folder: Path) -> list[int]:
    return [json.loads(line)["index"] for line in (folder / "manifest.jsonl").read_text().splitlines()]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One quick run of the classic pipeline (6 pairs), copied by each test that changes it."""
    base = tmp_path_factory.mktemp("generate")
    write_folder_dataset(base / "data")
    path = base / "classic.yaml"
    path.write_text(yaml.safe_dump(CLASSIC, sort_keys=False))
    run_pipeline(path, RunOptions(out=base / "run", profile="quick", show_progress=False, evaluate=False))
    return base / "run"


@pytest.fixture
def run_dir(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def generate(*args: str):
    return CliRunner().invoke(cli, ["generate", *args, "--quiet"])


def test_generate_refuses_to_shrink_the_runs_set(run_dir):
    before = snapshot(run_dir)
    result = generate(str(run_dir), "--count", "3")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"{run_dir / 'synthetic'} already holds 6 pairs (indices up to 5); a count of 3 would drop 3 of them" in message
    assert "at least 6" in message and f"msaug generate RUN_DIR --count 3 --out NEW_FOLDER" in message
    assert "Traceback" not in result.output
    zero = generate(str(run_dir), "--count", "0")
    assert zero.exit_code == 2 and "--count" in zero.stderr and "Traceback" not in zero.output
    assert snapshot(run_dir) == before
    assert verify_target(str(run_dir)).ok


def test_generate_refuses_orphaned_pairs_above_the_count(run_dir):
    """Files a killed run wrote before their manifest line count as part of the set."""
    lines = (run_dir / "synthetic/manifest.jsonl").read_text().splitlines()
    (run_dir / "synthetic/manifest.jsonl").write_text("\n".join(lines[:4]) + "\n")
    result = generate(str(run_dir), "--count", "5")
    assert result.exit_code == 2 and "already holds 6 pairs (indices up to 5)" in " ".join(result.stderr.split())
    assert generate(str(run_dir), "--count", "6").exit_code == 0
    assert manifest_indices(run_dir / "synthetic") == list(range(6)) and verify_target(str(run_dir)).ok


def test_generate_adds_to_the_runs_set(run_dir):
    before = pngs(run_dir / "synthetic")
    result = generate(str(run_dir), "--count", "9")
    assert result.exit_code == 0, result.output
    assert manifest_indices(run_dir / "synthetic") == list(range(9))
    after = pngs(run_dir / "synthetic")
    assert {k: after[k] for k in before} == before  # the first 6 pairs are untouched
    assert verify_target(str(run_dir)).ok


def test_generate_out_writes_a_new_set_byte_identical_and_resumable(run_dir, tmp_path):
    run_before = snapshot(run_dir)
    new = tmp_path / "more" / "set"
    result = generate(str(run_dir), "--count", "3", "--out", str(new))
    assert result.exit_code == 0, result.output
    assert snapshot(run_dir) == run_before  # the run itself is not touched
    assert manifest_indices(new) == [0, 1, 2]
    reference = pngs(run_dir / "synthetic")
    assert pngs(new) == {k: reference[k] for k in pngs(new)}  # pair i is the same file wherever it is written
    assert verify_target(str(new)).ok
    again = generate(str(run_dir), "--count", "8", "--out", str(new))  # grows, keeps the first three
    assert again.exit_code == 0, again.output
    assert manifest_indices(new) == list(range(8))
    assert "3 already on disk" in again.stderr
    shrink = generate(str(run_dir), "--count", "2", "--out", str(new))
    assert shrink.exit_code == 2 and f"{new} already holds 8 pairs (indices up to 7)" in " ".join(shrink.stderr.split())


def test_generate_out_shards_fill_one_set(run_dir, tmp_path):
    new = tmp_path / "sharded"
    first = generate(str(run_dir), "--count", "6", "--shard", "0/2", "--out", str(new))
    assert first.exit_code == 0, first.output
    assert not (new / "manifest.jsonl").exists() and "other shards are still missing" in first.stderr
    second = generate(str(run_dir), "--count", "6", "--shard", "1/2", "--out", str(new))
    assert second.exit_code == 0, second.output
    assert manifest_indices(new) == list(range(6))
    assert pngs(new) == pngs(run_dir / "synthetic")


def test_generate_out_never_writes_into_a_folder_msaug_did_not_make(run_dir, tmp_path):
    user = tmp_path / "my-data"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    result = generate(str(run_dir), "--count", "2", "--out", str(user))
    assert result.exit_code == 2
    assert f"--out {user}: the folder exists and was not written by msaug generate" in " ".join(result.stderr.split())
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = generate(str(run_dir), "--count", "2", "--out", str(blocker))
    assert result.exit_code == 2 and f"--out {blocker}: exists and is not a folder" in result.stderr
    assert blocker.read_text() == "x"


def _change_generate(run_dir: Path, key: str, value) -> None:
    resolved = run_dir / "pipeline.resolved.yaml"
    config = yaml.safe_load(resolved.read_text())
    config["generate"][key] = value
    resolved.write_text(yaml.safe_dump(config, sort_keys=False))


def _change_stage_hash(folder: Path) -> None:
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    lines[0]["stages"]["03-lab2im"] = "0" * 16  # as if lab2im had been retrained
    (folder / "manifest.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda run, new: _change_generate(run, "seed", 7), "{new}: pair 0 was generated with seed 0, but this run generates with seed 7"),
        (lambda run, new: _change_generate(run, "bit_depth", 8), "{new}/dataset.json: the pairs there have bit_depth 16, but this run writes 8"),
        (lambda run, new: _change_stage_hash(new), "{new}: pair 0 was generated by other stage weights (03-lab2im differ from this run's)"),
    ],
    ids=["seed", "bit_depth", "stage_weights"],
)
def test_generate_out_never_mixes_two_generators_in_one_set(run_dir, tmp_path, change, message):
    new = tmp_path / "set"
    assert generate(str(run_dir), "--count", "2", "--out", str(new)).exit_code == 0
    change(run_dir, new)
    before = snapshot(new)
    result = generate(str(run_dir), "--count", "4", "--out", str(new))
    assert result.exit_code == 2, result.output
    assert message.format(new=new) in " ".join(result.stderr.split())
    assert snapshot(new) == before


def test_interrupted_generate_names_the_command_to_rerun(run_dir, monkeypatch):
    import msaug.pipeline.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "generate_run", interrupted)
    result = generate(str(run_dir), "--count", "9")
    assert result.exit_code == 130
    message = " ".join(result.stderr.split())
    assert f"rerun msaug generate {run_dir} --count 9 --quiet to continue" in message
    assert "--resume" not in message


def test_disk_full_during_generate_names_the_file_and_the_command(run_dir, monkeypatch):
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = generate(str(run_dir), "--count", "12")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"cannot write {run_dir / 'synthetic'}/" in message and "No space left on device" in message
    assert f"rerun msaug generate {run_dir} --count 12 --quiet" in message and "--resume" not in message
    assert "Traceback" not in result.output
    monkeypatch.setattr(os, "fsync", real_fsync)
    done = generate(str(run_dir), "--count", "12")
    assert done.exit_code == 0, done.output
    assert manifest_indices(run_dir / "synthetic") == list(range(12))
    assert verify_target(str(run_dir)).ok


def test_generated_files_follow_the_umask(run_dir, tmp_path):
    old = os.umask(0o022)
    try:
        result = generate(str(run_dir), "--count", "2", "--out", str(tmp_path / "shared"))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "shared").rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {"0o644"}, modes


@pytest.mark.slow
def test_generation_speed_benchmark_measures_two_trees_side_by_side(finished_run, tmp_path):
    """benchmarks/generation_speed.py against this same checkout, the other tree generating from a copy of
    the run with another generation batch size: both write the same files."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "speed.json"
    before = snapshot(finished_run)
    other = tmp_path / "other-run"
    shutil.copytree(finished_run, other)
    resolved = yaml.safe_load((other / "pipeline.resolved.yaml").read_text())
    assert resolved["generate"]["batch_size"] != 2
    resolved["generate"]["batch_size"] = 2
    (other / "pipeline.resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "generation_speed.py"), str(finished_run), "--against", str(root),
         "--against-run", str(other), "--count", "6", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures["pairs_per_second"]) == {"this", "against"}
    assert figures["runs"] == {"this": str(finished_run), "against": str(other)}
    assert all(len(v) == 1 and v[0] > 0 for v in figures["pairs_per_second"].values())
    assert figures["labels_identical"] is True and figures["image_max_abs_difference"] == 0.0
    assert figures["ratio"] == pytest.approx(figures["median"]["this"] / figures["median"]["against"])
    assert "repeat 1/1 this:" in done.stdout and "repeat 1/1 against:" in done.stdout
    assert snapshot(finished_run) == before  # the run folder is only read


def test_generation_speed_benchmark_refuses_a_second_run_without_a_second_tree(finished_run, tmp_path):
    """--against-run alone would be silently ignored: it is an error that says what is missing, before any generation."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "generation_speed.py"), str(finished_run), "--against-run", str(finished_run)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    assert "--against-run names the run folder of the --against checkout; give --against too" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
