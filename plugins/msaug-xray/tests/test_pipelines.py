"""pipelines/xray.yaml and xray-single.yaml compose, share their data/generate/evaluate blocks,
and take a real SCR folder through --set, through the public CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
MULTI, SINGLE = REPO / "pipelines" / "xray.yaml", REPO / "pipelines" / "xray-single.yaml"


def _msaug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msaug", *args], capture_output=True, text=True, timeout=300)


def test_baseline_shares_data_generate_and_evaluate():
    multi, single = yaml.safe_load(MULTI.read_text()), yaml.safe_load(SINGLE.read_text())
    for key in ("data", "generate", "evaluate"):
        assert multi[key] == single[key], key
    assert [s["use"] for s in multi["stages"]] == ["xray.anatomy_mask", "xray.mask_upscale", "xray.image"]
    assert [s["use"] for s in single["stages"]] == ["xray.joint"]
    for profile in ("quick", "full"):
        assert multi["profiles"][profile]["data.size"] == single["profiles"][profile]["data.size"]
    assert multi["profiles"]["quick"]["data.size"] <= 128 and multi["profiles"]["full"]["data.size"] >= 512
    assert multi["profiles"]["quick"]["generate.count"] >= 200
    # the baseline trains as long as the three stages together
    quick_multi = sum(multi["profiles"]["quick"][f"stages.{n}.budget"]["seconds"] for n in ("anatomy_mask", "mask_upscale", "image"))
    assert single["profiles"]["quick"]["stages.joint.budget"]["seconds"] == quick_multi


@pytest.mark.slow
@pytest.mark.parametrize("path", [MULTI, SINGLE])
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_pipelines_compose(path, profile):
    result = _msaug("pipeline", "check", str(path), "--profile", profile)
    assert result.returncode == 0, result.stdout + result.stderr
    size = "128 px" if profile == "quick" else "512 px"
    assert f"Image(1 ch, {size})" in result.stdout


@pytest.mark.slow
def test_scr_folder_through_set(tmp_path):
    for i, case in enumerate(("JPCLN001", "JPCNN002")):
        image = tmp_path / "All247images" / f"{case}.IMG"
        image.parent.mkdir(parents=True, exist_ok=True)
        np.full((2048, 2048), 2000, dtype=">u2").tofile(image)
        for structure in ("left lung", "right lung", "heart", "left clavicle", "right clavicle"):
            gif = tmp_path / "scratch" / f"fold{i + 1}" / "masks" / structure / f"{case}.gif"
            gif.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((1024, 1024), np.uint8)).save(gif)
    ok = _msaug("pipeline", "check", str(MULTI), "--set", "data.dataset=xray.scr", "--set", f"data.root={tmp_path}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "xray.scr (2 cases" in " ".join(ok.stdout.split())
    bad = _msaug("pipeline", "check", str(MULTI), "--set", "data.dataset=xray.scr", "--set", f"data.root={tmp_path / 'nope'}")
    assert bad.returncode != 0 and "does not exist (xray.scr expects All247images/*.IMG" in " ".join((bad.stdout + bad.stderr).split())
    assert "Traceback" not in bad.stderr
