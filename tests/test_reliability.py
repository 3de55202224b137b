"""Bad input, kills, disk full and untrusted files: nothing lost, nothing run, one clear message."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image as PILImage

from msaug.cli import cli
from msaug.errors import CheckpointError, DataError
from msaug.io import sha256_file
from msaug.pipeline.runner import RunOptions, generate_run, run_pipeline
from msaug.verify import verify_target
from tests.conftest import CLASSIC, write_folder_dataset


def pngs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*.png"))}


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob(".*.tmp")]


class Payload:
    """Unpickling this runs a shell command: the classic pickle attack."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_in_checkpoint_is_refused_and_never_runs(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", show_progress=False))
    marker = tmp_path / "pwned"
    weights = out / "stages/03-lab2im/stage.safetensors"
    weights.write_bytes(pickle.dumps(Payload(marker)))
    info = out / "stages/03-lab2im/stage.json"
    import json

    meta = json.loads(info.read_text())
    meta["sha256"] = sha256_file(weights)  # an attacker controls both files
    info.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        generate_run(out, 8, None, show_progress=False)
    assert not marker.exists()


def test_disk_full_keeps_finished_pairs_and_resume_completes(classic_yaml, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    run_pipeline(classic_yaml, RunOptions(out=reference, profile="quick", show_progress=False))
    out = tmp_path / "run"
    import tempfile

    real_mkstemp, calls = tempfile.mkstemp, {"n": 0}

    def mkstemp(*args, **kwargs):
        if Path(kwargs.get("dir", ".")).name == "images":
            calls["n"] += 1
            if calls["n"] > 5:  # the disk fills up in the middle of generation, at the sixth image file
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    result = CliRunner().invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(out), "--quiet"])
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr and "rerun with --resume" in result.stderr
    assert f"cannot write {out / 'synthetic'}/" in " ".join(result.stderr.split())  # the file that could not be written
    assert "Traceback" not in result.output
    assert no_temp_files(out)
    partial = pngs(out / "synthetic")
    assert 0 < len(partial) < 12
    for name, digest in partial.items():  # whatever was written is complete and correct
        assert pngs(reference / "synthetic")[name] == digest
    monkeypatch.setattr(tempfile, "mkstemp", real_mkstemp)
    result = CliRunner().invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(out), "--quiet", "--resume"])
    assert result.exit_code == 0, result.output
    assert pngs(out / "synthetic") == pngs(reference / "synthetic")


def test_unwritable_out_is_a_clear_error(classic_yaml, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(blocker), "--quiet"])
    assert result.exit_code == 2 and "exists and is not a folder" in result.stderr
    result = CliRunner().invoke(cli, ["pipeline", "run", str(classic_yaml), "--out", str(blocker / "sub"), "--quiet"])
    assert result.exit_code == 2 and "cannot write" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_lines", [1, 3])
def test_sigkill_during_generation_then_resume_is_byte_identical(tmp_path, kill_after_lines):
    write_folder_dataset(tmp_path / "data", n=8, size=32)
    cfg = {**CLASSIC, "generate": {"count": 400, "batch_size": 8}, "profiles": {}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    reference = tmp_path / "reference"
    run_pipeline(path, RunOptions(out=reference, show_progress=False, evaluate=False))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "msaug", "pipeline", "run", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "synthetic/manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.read_text().count("\n") >= kill_after_lines * 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(pngs(out / "synthetic")) < 800
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert pngs(out / "synthetic") == pngs(reference / "synthetic")
    assert no_temp_files(out)


# --- bad input: each case one clear message naming the file -----------------------------------


def folder_pipeline(tmp_path: Path, **data) -> Path:
    cfg = {**CLASSIC, "profiles": {}, "data": {**CLASSIC["data"], **data}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(path: Path, tmp_path: Path):
    return CliRunner().invoke(cli, ["pipeline", "run", str(path), "--out", str(tmp_path / "out"), "--quiet"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "images/case003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20), "images/case003.png: cannot read image"),
        (lambda d: (d / "images/case003.png").write_bytes((d / "images/case003.png").read_bytes()[:60]), "images/case003.png: cannot read image"),
        (lambda d: PILImage.fromarray(np.full((32, 32), 9, np.uint8)).save(d / "labels/case002.png"), "labels/case002.png: label value 9 is outside the declared classes; valid values: 0..2"),
        (lambda d: PILImage.fromarray(np.zeros((20, 32), np.uint8)).save(d / "images/case001.png"), "images/case001.png: image is 32x20 but its label case001.png is 32x32"),
        (lambda d: (d / "labels/case005.png").unlink(), "images/ and labels/ do not pair up by stem: images without label: case005"),
        (lambda d: PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(d / "labels/case004.gif"), "two files share the stem 'case004'"),
        (lambda d: [p.unlink() for p in (d / "labels").iterdir()], "no label files"),
        (lambda d: PILImage.fromarray(np.zeros((32, 32, 3), np.uint8)).save(d / "labels/case000.png"), None),
    ],
    ids=["corrupt-png", "truncated-png", "label-values", "size-mismatch", "unpaired", "duplicate-stem", "empty", "rgb-label"],
)
def test_bad_folder_data(tmp_path, shapes_dir, damage, message):
    damage(shapes_dir)
    result = run_cli(folder_pipeline(tmp_path), tmp_path)
    if message is None:  # an RGB label image is read as grey and validated like any other
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_missing_root(tmp_path):
    result = run_cli(folder_pipeline(tmp_path, root=str(tmp_path / "nowhere")), tmp_path)
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_verify_lists_every_problem(tmp_path, shapes_dir):
    PILImage.fromarray(np.full((32, 32), 5, np.uint8)).save(shapes_dir / "labels/case001.png")
    (shapes_dir / "images/case006.png").write_bytes(b"nonsense")
    report = verify_target(str(shapes_dir), classes=["background", "disc", "square"])
    assert not report.ok and report.checked == 8  # every item counts, the unreadable ones too
    assert any("case001.png: label value 5" in p for p in report.problems)
    assert any("case006.png: cannot read image" in p for p in report.problems)
    result = CliRunner().invoke(cli, ["data", "verify", str(shapes_dir), "--classes", "background,disc,square"])
    assert result.exit_code == 1 and "2 problems in 8 items" in " ".join(result.stdout.split())


def test_verify_run_detects_tampering(classic_yaml, tmp_path):
    out = tmp_path / "run"
    run_pipeline(classic_yaml, RunOptions(out=out, profile="quick", show_progress=False))
    assert verify_target(str(out)).ok
    img = out / "synthetic/images/000003.png"
    PILImage.fromarray(np.zeros((32, 32), np.uint16)).save(img)
    report = verify_target(str(out))
    assert report.problems == [f"{img}: sha256 does not match manifest.jsonl"]
    with pytest.raises(DataError, match="manifest not found"):
        (out / "synthetic/manifest.jsonl").unlink()
        verify_target(str(out / "synthetic"))


@pytest.mark.slow
def test_sigkill_during_stage_training_then_resume_is_byte_identical(tmp_path, shapes_dir):
    """A GAN stage killed mid-training resumes from its last checkpoint to the very same files."""
    cfg = {
        **CLASSIC,
        "profiles": {},
        "data": {**CLASSIC["data"], "size": 16},
        "stages": [
            {"use": "gan.label_generator", "params": {"size": 16, "width": 4, "batch_size": 4, "checkpoint_every": 5,
                                                      "sample_every": 1000, "log_every": 5}, "budget": {"steps": 40}},
            {"use": "core.lab2im"},
        ],
        "generate": {"count": 8, "batch_size": 4},
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every run: same float sums
    base = [sys.executable, "-m", "msaug", "pipeline", "run", str(path), "--quiet", "--out"]
    reference = tmp_path / "reference"
    subprocess.run(base + [str(reference)], env=env, check=True, capture_output=True)
    out = tmp_path / "run"
    cmd = base + [str(out)]
    stage_dir = out / "stages/01-label_generator"
    for kill_at in (1, 3):  # kill after the first and after the third checkpoint
        proc = subprocess.Popen(cmd + (["--resume"] if out.exists() else []), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        metrics = stage_dir / "metrics.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.is_file() and metrics.read_text().count("\n") >= kill_at + 1:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (stage_dir / "stage.json").exists()
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert pngs(out / "synthetic") == pngs(reference / "synthetic")
    assert sha256_file(stage_dir / "stage.safetensors") == sha256_file(reference / "stages/01-label_generator/stage.safetensors")
    assert no_temp_files(out)


def test_resume_removes_only_the_temp_files_of_dead_writers(tmp_path):
    from msaug.io import _HOST, atomic_open, remove_stale_temp_files

    host = _HOST
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    folder = tmp_path / "synthetic" / "images"
    folder.mkdir(parents=True)
    stale = folder / f".000001.png.{host}~{dead_pid}.abc123.tmp"
    live = folder / f".000002.png.{host}~{os.getppid()}.def456.tmp"  # the test runner's parent: alive
    other_host = folder / f".000003.png.elsewhere~{dead_pid}.ghi789.tmp"  # cannot be checked from here
    for p in (stale, live, other_host):
        p.write_bytes(b"half")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other_host.exists()
    # the temp file of an atomic write names its writer
    with atomic_open(tmp_path / "x.bin") as fh:
        names = [p.name for p in tmp_path.glob(".x.bin.*.tmp")]
        fh.write(b"1")
    assert len(names) == 1 and f".{host}~{os.getpid()}." in names[0]
    assert (tmp_path / "x.bin").read_bytes() == b"1"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    from msaug.io import atomic_write

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "new.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == mode == plain.stat().st_mode & 0o777


def test_atomic_overwrite_keeps_the_files_mode(tmp_path):
    from msaug.io import atomic_write

    users = tmp_path / "shared.json"
    users.write_text("{}")
    users.chmod(0o644)
    old = os.umask(0o077)
    try:
        atomic_write(users, '{"new": 1}')
    finally:
        os.umask(old)
    assert users.stat().st_mode & 0o777 == 0o644 and users.read_text() == '{"new": 1}'


def test_a_failed_atomic_write_names_the_file(tmp_path, monkeypatch):
    from msaug.io import atomic_write

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "sub" / "x.png", b"1")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "sub" / "x.png")
    assert no_temp_files(tmp_path) and not (tmp_path / "sub" / "x.png").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to fill the disk")
def test_a_failed_append_names_the_file(tmp_path):
    """Logs and manifests grow by appended lines (metrics.jsonl, manifest.jsonl): a full disk names the file."""
    from msaug.io import append_lines

    log = tmp_path / "metrics.jsonl"
    log.symlink_to("/dev/full")  # every write to it fails with ENOSPC
    for sync in (False, True):
        with pytest.raises(OSError) as info:
            append_lines(log, ['{"step": 1}\n'], sync=sync)
        assert info.value.errno == errno.ENOSPC and info.value.filename == str(log)
    append_lines(tmp_path / "ok.jsonl", ["a\n", "b\n"])
    append_lines(tmp_path / "ok.jsonl", ["c\n"], sync=True)
    assert (tmp_path / "ok.jsonl").read_text() == "a\nb\nc\n"
