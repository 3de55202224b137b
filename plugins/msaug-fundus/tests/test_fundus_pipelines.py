"""pipelines/fundus.yaml and fundus-single.yaml: valid chains, shared blocks, sizes per profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from fundus_fixtures import write_drive

from msaug import Image, Label
from msaug.pipeline.runner import prepare

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"
MULTI, SINGLE = PIPELINES / "fundus.yaml", PIPELINES / "fundus-single.yaml"


@pytest.mark.parametrize(("profile", "size", "mask_size"), [("quick", 128, 32), ("full", 512, 128), ("none", 256, 64)])
def test_multistage_chain_per_profile(profile, size, mask_size):
    p = prepare(MULTI, profile=profile)
    names = [cs.stage.name for cs in p.chain.stages]
    assert names == ["fundus.vessel_mask", "fundus.mask_upscale", "fundus.image"]
    mask, up, image = (cs.stage for cs in p.chain.stages)
    assert mask.output == Label(("background", "vessel"), mask_size, "index", "max") == up.input
    assert up.output.size == size and image.output == Image(3, size)
    assert 2 <= size // mask_size <= 8  # the upscaler's range


@pytest.mark.parametrize("profile", ["quick", "full", "none"])
def test_single_stage_shares_data_generate_evaluate(profile):
    multi, single = prepare(MULTI, profile=profile).config, prepare(SINGLE, profile=profile).config
    assert [s.use for s in single.stages] == ["fundus.joint"]
    assert single.data == multi.data
    assert single.generate == multi.generate
    assert single.evaluate == multi.evaluate


@pytest.mark.parametrize("profile", ["quick", "full", "none"])
def test_joint_gets_the_chain_budget(profile):
    multi, single = prepare(MULTI, profile=profile).config, prepare(SINGLE, profile=profile).config
    assert single.stages[0].budget.steps == sum(s.budget.steps for s in multi.stages)
    if profile == "quick":
        assert single.stages[0].budget.seconds == sum(s.budget.seconds for s in multi.stages)


def test_drive_layout_through_set(tmp_path):
    write_drive(tmp_path)
    p = prepare(MULTI, profile="quick", sets=["data.dataset=fundus.drive", f"data.root={tmp_path}"])
    assert len(p.dataset) == 4 and p.spec.size == 128 and p.spec.has_roi
    assert p.dataset[0].roi.shape == (128, 128)
