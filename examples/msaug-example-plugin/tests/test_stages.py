"""derm.lesion_mask: the msaug stage contract, and that the shape model learns the training lesions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from msaug import BatchRNG, Budget, CheckpointError, DataConfig, DataError, FitContext, load_dataset
from msaug.testing import StageContract, check_outputs, stage_pairs, tiny_dataset
from msaug_derm.metrics import lesion_shape_metrics
from msaug_derm.stages import LesionMask


class TestLesionMaskContract(StageContract):
    stages = ["derm.lesion_mask"]
    # on its own phantom (picked by default) and on msaug's tiny datasets: the stage must
    # work on any label space, drawing the lesion in the last channel
    datasets = {"derm.*": ["derm.phantom", "tiny-index-grey", "tiny-multilabel-rgb"]}


def fitted(size: int = 48, count: int = 40, **params) -> tuple[LesionMask, object]:
    data = load_dataset(DataConfig(dataset="derm.phantom", size=size, count=count))
    stage = LesionMask({"size": size, **params}, data.spec)
    stage.fit(stage_pairs(stage, data), Budget(steps=1), FitContext(out_dir=Path(".")))
    return stage, data


def test_generated_lesions_match_the_training_statistics():
    stage, data = fitted()
    real = torch.stack([torch.as_tensor(data[i].label) for i in range(len(data))])
    fake = check_outputs(stage.generate(None, BatchRNG.for_indices(0, range(64))), stage, 64)[0]
    real_m, fake_m = lesion_shape_metrics(real, data.spec), lesion_shape_metrics(fake, data.spec)
    assert fake_m["single_lesion_rate"] >= 0.95 and fake_m["hole_rate"] == 0.0
    assert abs(fake_m["mean_area_share"] - real_m["mean_area_share"]) < 0.25 * real_m["mean_area_share"]
    assert abs(fake_m["mean_solidity"] - real_m["mean_solidity"]) < 0.05
    # varied, not one shape repeated
    areas = fake[:, 1].mean(dim=(1, 2))
    assert float(areas.std()) > 0.2 * float(areas.mean())


def test_zero_temperature_gives_the_mean_lesion_for_every_seed():
    stage, _ = fitted(temperature=0.0)
    out = stage.generate(None, BatchRNG.for_indices(5, range(4)))
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))
    assert out[0, 1].sum() > 0


def test_fit_needs_lesions():
    data = tiny_dataset(size=32, count=4)
    empty = [s for s in (data[i] for i in range(4))]
    for s in empty:
        s.label[:] = 0
        s.label[0] = 1
    stage = LesionMask({"size": 16}, data.spec)
    with pytest.raises(DataError, match="needs at least 2 training masks with a lesion, found 0 of 4"):
        stage.fit(stage_pairs(stage, empty), Budget(steps=1), FitContext(out_dir=Path(".")))


def test_load_state_dict_rejects_another_model():
    stage, _ = fitted(harmonics=4)
    other = LesionMask({"size": 48, "harmonics": 6}, stage.data)
    with pytest.raises(CheckpointError, match=r"needs 'mean' \[15\]"):
        other.load_state_dict(stage.state_dict())


def test_features_round_trip_a_border():
    stage, data = fitted()
    mask = data[3].label[1] > 0.5
    centre, radii = stage.border(stage.features(mask))
    from msaug_derm.shape import radial_mask

    redrawn = radial_mask(mask.shape[0], centre, radii)
    iou = (redrawn & mask).sum() / (redrawn | mask).sum()
    assert iou > 0.9
    assert np.allclose(centre, np.argwhere(mask).mean(0) / mask.shape[0] + 0.5 / mask.shape[0], atol=0.02)
