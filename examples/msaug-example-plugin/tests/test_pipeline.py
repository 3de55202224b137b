"""pipeline.yaml chains derm.lesion_mask with msaug's stages, and runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline.yaml"


def msaug(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msaug", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("profile", ["quick", "full", "none"])
def test_pipeline_type_checks_in_every_profile(profile):
    result = msaug("pipeline", "check", str(PIPELINE), "--profile", profile)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "1. derm.lesion_mask" in out and "2. core.label_resize" in out and "3. gan.translator" in out
    assert "product: Image(3 ch" in out and "Label(2 classes" in out


@pytest.mark.slow
def test_quick_profile_runs_and_writes_pairs(tmp_path):
    out = tmp_path / "run"
    # the quick profile with an even smaller GAN budget: this checks the wiring, not the quality
    result = msaug(
        "pipeline", "run", str(PIPELINE), "--profile", "quick", "--out", str(out), "--quiet",
        "--set", "stages.translator.budget.steps=5", "--set", "generate.count=6",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = [json.loads(line) for line in (out / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == 6
    assert len(list((out / "synthetic" / "images").glob("*.png"))) == 6
    lesion = json.loads((out / "stages" / "01-lesion_mask" / "stage.json").read_text())
    assert lesion["use"] == "derm.lesion_mask" and lesion["summary"]["training_masks"] >= 2
    assert (out / "report.json").is_file()
