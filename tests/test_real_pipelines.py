"""The shipped real-data pipelines: found through MSAUG_DATA, checked before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from msaug.cli import cli
from msaug.data import DATA_ENV

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
REAL = {"drive.yaml": "DRIVE", "drive-single.yaml": "DRIVE", "drive-jitter.yaml": "DRIVE", "drive-patches.yaml": "DRIVE",
        "cxr-lungs.yaml": "cxr-lungs", "cxr-lungs-single.yaml": "cxr-lungs"}


@pytest.mark.parametrize("name", sorted(REAL))
def test_without_msaug_data_the_check_names_the_setting(name, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    result = CliRunner().invoke(cli, ["pipeline", "check", str(PIPELINES / name)])
    assert result.exit_code == 2
    assert "$MSAUG_DATA, which is not set" in result.output
    assert "data.root" in result.output and name in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("arm", ["drive-single.yaml", "drive-jitter.yaml", "drive-patches.yaml"])
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_drive_arms_share_data_generation_and_evaluation_with_the_chain(arm, profile, monkeypatch):
    """msaug compare is fair only if every DRIVE arm sees the same cases, pairs count and segmenter."""
    monkeypatch.setenv(DATA_ENV, "/nonexistent")  # resolved as text only: no data are read
    from msaug.pipeline.config import load_pipeline

    chain = load_pipeline(PIPELINES / "drive.yaml", profile=profile).config
    other = load_pipeline(PIPELINES / arm, profile=profile).config
    if arm == "drive-patches.yaml":  # the arm of the pixel scale: the same data, cut into native-resolution patches
        assert other.data.crops is not None and chain.data.crops is None
        if profile == "quick":
            assert other.data.model_copy(update={"crops": None}) == chain.data
    else:
        assert other.data == chain.data
    assert other.generate == chain.generate
    assert other.evaluate == chain.evaluate


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_pipelines_pass_check_on_the_real_data(name, real_data, monkeypatch):
    root = real_data(REAL[name])
    monkeypatch.setenv(DATA_ENV, str(root.parent))
    result = CliRunner().invoke(cli, ["pipeline", "check", str(PIPELINES / name)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    if REAL[name] == "DRIVE":
        assert "20 train / 20 test cases (the official split)" in text
    else:
        # 288 radiographs of 181 patients; whole patients go to one side
        assert "229 train / 59 test cases (144 / 37 groups)" in text


@pytest.mark.realdata
@pytest.mark.slow
def test_segment_train_on_real_drive_scores_at_native_resolution(real_data, tmp_path):
    """Two training steps on DRIVE's official split: metrics on the 565 x 584 grid inside the FOV."""
    root = real_data("DRIVE")
    result = CliRunner().invoke(cli, [
        "segment", "train", "--data", "fundus.drive", "--root", str(root), "--split-by", "official", "--count", "40",
        "--seg-size", "native", "--patch", "128", "--encoder", "tu-resnet10t", "--steps", "2", "--batch-size", "2",
        "--out", str(tmp_path), "--quiet", "--device", "cpu",
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["segmenter"]["size"] == 584
    assert evaluation["pairs"]["test"] == 20
    assert evaluation["resolution"]["description"] == "native resolution, 565 x 584 px (all 20 test images)"
    assert evaluation["resolution"]["inside_roi"] is True
