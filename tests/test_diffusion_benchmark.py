"""benchmarks/diffusion_speed.py at 16 px for two steps: the figures it reports are there and plausible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "diffusion_speed.py"


@pytest.mark.slow  # a child process: about 15 s on a loaded 2-core machine
def test_reports_train_and_sampling_speed_per_size(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    cmd = [sys.executable, str(SCRIPT), "--sizes", "16", "--steps", "2", "--warmup", "1", "--width", "4", "--levels", "2",
           "--batch-size", "2", "--sample-steps", "2", "--sample-batch", "2", "--cases", "3", "--threads", "1", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())
    assert summary["device"] == "cpu" and summary["threads"] == 1
    assert summary["config"] == {"width": 4, "levels": 2, "attention_levels": 1, "batch_size": 2, "sample_steps": 2}
    (row,) = summary["results"]
    assert row["size"] == 16 and row["timed_steps"] == 2 and row["parameters"] > 0
    assert row["train_steps_per_second"] > 0 and row["sample_pairs_per_second"] > 0 and row["gflops_per_unet_pass"] > 0
    assert abs(row["train_images_per_second"] - 2 * row["train_steps_per_second"]) <= 0.002  # batch 2, both rounded
    assert json.loads(done.stdout) == summary
