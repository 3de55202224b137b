"""The anatomical plausibility metric and the post-processing the mask stage applies."""

from __future__ import annotations

import numpy as np
import torch

from msaug.plugins import get_registries
from msaug_xray import ANATOMY_CLASSES, anatomical_postprocess, plausibility_metrics, xray_spec
from msaug_xray.phantom import case_rng, render_case

SPEC = xray_spec(64)


def _maps(n: int = 4) -> torch.Tensor:
    return torch.from_numpy(np.stack([render_case(64, case_rng(5, i))[1] for i in range(n)]))


def test_real_maps_are_plausible_with_per_structure_figures():
    metrics = plausibility_metrics(_maps(), SPEC)
    assert metrics["plausibility_rate"] == 1.0
    for name in ANATOMY_CLASSES:
        assert metrics[f"{name}_one_component"] == 1.0
        assert metrics[f"{name}_in_place"] == 1.0
        assert metrics[f"{name}_components"] == 1.0
        assert 0.0 < metrics[f"{name}_area"] < 0.3


def test_swapped_sides_and_stray_blobs_and_missing_structures_are_caught():
    maps = _maps(4)
    maps[0, [0, 1]] = maps[0, [1, 0]]  # lungs on the wrong sides
    maps[1, 2, 2:5, 2:5] = 1.0  # a second heart region in a corner
    maps[2, 3] = 0.0  # no left clavicle
    metrics = plausibility_metrics(maps, SPEC)
    assert metrics["plausibility_rate"] == 0.25
    assert metrics["left_lung_in_place"] == 0.75 and metrics["right_lung_in_place"] == 0.75
    assert metrics["heart_one_component"] == 0.75 and metrics["heart_components"] == 1.25
    assert metrics["left_clavicle_one_component"] == 0.75 and metrics["left_clavicle_in_place"] == 0.75


def test_postprocess_keeps_largest_region_fills_holes_and_keeps_sides():
    clean = _maps(1)[0]
    dirty = clean.clone()
    dirty[2, 1:4, 1:4] = 1.0  # stray heart blob
    ys, xs = torch.nonzero(clean[1] > 0, as_tuple=True)
    cy, cx = int(ys.float().mean()), int(xs.float().mean())
    dirty[1, cy - 1 : cy + 2, cx - 1 : cx + 2] = 0.0  # a hole in the right lung
    dirty[1, 30:34, 50:54] = 1.0  # right-lung pixels on the image's right (the wrong side)
    dirty[1, 30:34, 40:54] = 1.0  # ... connected to nothing of the right lung
    assert plausibility_metrics(dirty[None], SPEC)["plausibility_rate"] == 0.0
    fixed = anatomical_postprocess(dirty, ANATOMY_CLASSES)
    assert fixed.shape == dirty.shape and fixed.dtype == torch.float32
    assert torch.equal(fixed, clean)
    assert plausibility_metrics(fixed[None], SPEC)["plausibility_rate"] == 1.0


def test_postprocess_batched_cuts_a_lung_that_crosses_the_midline():
    maps = _maps(2)
    maps[0, 1, 28:36, 20:44] = 1.0  # the right lung bridges over the midline into the left lung's side
    out = anatomical_postprocess(maps, ANATOMY_CLASSES)
    assert out.shape == maps.shape
    right = out[0, 1].numpy() > 0
    left_cols = np.nonzero(out[0, 0].numpy().any(axis=0))[0]
    assert np.nonzero(right.any(axis=0))[0].max() < left_cols.min() + 1
    assert torch.equal(out[1], maps[1])


def test_metric_is_registered_for_the_xray_domain():
    metrics = dict(get_registries().label_metrics.for_domain("xray"))
    assert metrics["anatomical_plausibility"] is plausibility_metrics
