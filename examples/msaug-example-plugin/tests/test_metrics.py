"""lesion_shape: each figure responds to the defect it measures."""

from __future__ import annotations

import torch

from msaug import DataSpec, get_registries
from msaug_derm.metrics import lesion_shape_metrics

SPEC = DataSpec(("background", "lesion"), "index", 3, 32, domain="derm")


def maps(*lesions: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(len(lesions), 2, 32, 32)
    for i, lesion in enumerate(lesions):
        out[i, 1] = lesion
        out[i, 0] = 1 - lesion
    return out


def disc(cy: float, cx: float, r: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float()


def test_registered_for_the_derm_domain():
    names = [name for name, _ in get_registries().label_metrics.for_domain("derm")]
    assert "lesion_shape" in names


def test_a_clean_disc_is_plausible():
    m = lesion_shape_metrics(maps(disc(16, 16, 8)), SPEC)
    assert m["single_lesion_rate"] == 1.0 and m["hole_rate"] == 0.0 and m["border_touch_rate"] == 0.0
    assert abs(m["mean_area_share"] - float(disc(16, 16, 8).mean())) < 1e-6
    assert m["mean_solidity"] > 0.85


def test_each_defect_is_counted():
    two = disc(8, 8, 4) + disc(24, 24, 4)
    ring = disc(16, 16, 10) - disc(16, 16, 4)
    edge = disc(2, 16, 6)
    m = lesion_shape_metrics(maps(two, ring, edge, disc(16, 16, 8)), SPEC)
    assert m["single_lesion_rate"] == 0.75
    assert m["hole_rate"] == 0.25
    assert m["border_touch_rate"] == 0.25
