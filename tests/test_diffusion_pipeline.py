"""pipelines/xray-diffusion.yaml: checks in both profiles and runs end to end at 16 px (a few steps per stage)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import msaug
from msaug.pipeline.config import load_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "xray-diffusion.yaml"

TINY = {
    "data.size": 16,
    "data.count": 6,
    "stages.anatomy_mask.params": {"size": 8, "width": 4, "batch_size": 2},
    "stages.anatomy_mask.budget": {"steps": 2},
    "stages.mask_upscale.params": {"in_size": 8, "width": 4, "batch_size": 2},
    "stages.mask_upscale.budget": {"steps": 2},
    "stages.image.params": {"width": 4, "levels": 2, "batch_size": 2, "sample_steps": 2},
    "stages.image.budget": {"steps": 2},
    "generate.count": 3,
}


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_profiles_keep_the_gan_label_stages_and_a_few_step_diffusion_translator(profile: str) -> None:
    config = load_pipeline(PIPELINE, profile=profile).config
    uses = [s.use for s in config.stages]
    assert uses == ["xray.anatomy_mask", "xray.mask_upscale", "diffusion.translator"]
    assert config.stages[2].name == "image" and config.stages[2].params["sample_steps"] <= 25
    assert config.generate.bit_depth == 16


@pytest.mark.slow
def test_runs_end_to_end_with_tiny_budgets(tmp_path: Path) -> None:
    out = tmp_path / "run"
    report = msaug.run_pipeline(PIPELINE, out=out, profile="quick", overrides=TINY, evaluate=False, progress=False,
                                reporter=msaug.SilentReporter())
    stages = {s["use"]: s for s in report["stages"]}
    translator = stages["diffusion.translator"]
    assert translator["summary"]["steps"] == 2 and "loss" in translator["losses"]
    assert (out / "stages" / "03-image" / "stage.safetensors").is_file()
    lines = [json.loads(line) for line in (out / "synthetic" / "manifest.jsonl").read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    image = np.asarray(PILImage.open(out / "synthetic" / lines[0]["image"]))
    assert image.shape == (16, 16) and image.dtype == np.uint16  # 16-bit output as with the GAN translator
