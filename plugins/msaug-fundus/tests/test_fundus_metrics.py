"""Vessel plausibility figures on maps whose answers are known by construction."""

from __future__ import annotations

import math

import numpy as np
import torch

from msaug import get_registries
from msaug_fundus import fundus_spec, vessel_plausibility
from msaug_fundus.metrics import widths_px


def to_labels(maps: list[np.ndarray]) -> torch.Tensor:
    v = torch.from_numpy(np.stack(maps)).float()
    return torch.stack([1 - v, v], dim=1)


def test_registered_for_the_fundus_domain():
    names = [n for n, _ in get_registries().label_metrics.for_domain("fundus")]
    assert "vessel_plausibility" in names


def test_width_of_straight_bars():
    m = np.zeros((40, 40), dtype=bool)
    m[10:13, 2:38] = True  # 3 px wide
    assert np.median(widths_px(m)) == 3.0
    m[:] = False
    m[20:22, 2:38] = True  # 2 px wide: not confused with a line
    assert np.median(widths_px(m)) == 2.0
    m[:] = False
    m[20, 2:38] = True  # 1 px wide
    assert set(widths_px(m)) == {1.0}


def test_density_components_and_largest_tree():
    a = np.zeros((20, 20), dtype=bool)
    a[2, 2:18] = True  # 16 px
    a[10:12, 5:9] = True  # 8 px, separate
    b = np.zeros((20, 20), dtype=bool)
    b[5, 1:11] = True
    b[6, 11] = True  # diagonal neighbour: still one 8-connected tree
    f = vessel_plausibility(to_labels([a, b]), fundus_spec(20))
    assert f["maps"] == 2 and f["empty_maps"] == 0
    assert f["vessel_density"] == (24 / 400 + 11 / 400) / 2
    assert f["components"] == 1.5
    assert f["largest_tree_share"] == (16 / 24 + 1.0) / 2


def test_speckle_scores_far_below_a_tree():
    rng = np.random.default_rng(0)
    tree = np.zeros((64, 64), dtype=bool)
    tree[32, 4:60] = True
    for x in range(8, 60, 8):
        tree[10:32, x] = True
    speckle = np.zeros_like(tree)
    speckle.flat[rng.choice(tree.size, int(tree.sum()), replace=False)] = True
    spec = fundus_spec(64)
    assert vessel_plausibility(to_labels([tree]), spec)["largest_tree_share"] == 1.0
    assert vessel_plausibility(to_labels([speckle]), spec)["largest_tree_share"] < 0.1


def test_empty_maps_are_counted_not_averaged():
    empty = np.zeros((16, 16), dtype=bool)
    f = vessel_plausibility(to_labels([empty]), fundus_spec(16))
    assert f["empty_maps"] == 1 and f["vessel_density"] == 0.0
    assert math.isnan(f["largest_tree_share"]) and math.isnan(f["width_p50_px"])
