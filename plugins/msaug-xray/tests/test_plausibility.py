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


def test_filled_equals_scipy_fill_holes_on_random_and_edge_masks():
    from scipy import ndimage

    from msaug_xray.plausibility import filled

    rng = np.random.default_rng(3)
    masks = [rng.random((40, 33)) < p for p in (0.2, 0.5, 0.7, 0.9) for _ in range(10)]
    ring = np.zeros((9, 9), dtype=bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False  # one hole
    open_ring = ring.copy()
    open_ring[2:5, 4] = False  # a cut through the top of the ring joins the hole to the outside
    masks += [ring, open_ring, np.zeros((5, 5), bool), np.ones((5, 5), bool), np.eye(6, dtype=bool)]
    for mask in masks:
        np.testing.assert_array_equal(filled(mask), ndimage.binary_fill_holes(mask))
    assert filled(ring)[4, 4] and not filled(open_ring)[4, 4]


def test_largest_region_keeps_the_biggest_blob_filled_wherever_it_lies():
    from scipy import ndimage

    from msaug_xray.plausibility import largest_region

    rng = np.random.default_rng(4)
    for _ in range(30):
        mask = ndimage.binary_opening(rng.random((48, 40)) < 0.6)
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
        got = largest_region(mask)
        if count == 0:
            assert not got.any()
            continue
        biggest = labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        np.testing.assert_array_equal(got, ndimage.binary_fill_holes(biggest))
        np.testing.assert_array_equal(largest_region(mask, fill_holes=False), biggest)
