"""fundus.phantom: shapes, determinism, anatomy that survives resolution, and option errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from msaug import ConfigError, DataConfig, get_registries, load_dataset, resize_label
from msaug_fundus import FOV_RADIUS_FRACTION, disc_fov, vessel_plausibility
from msaug_fundus.vessels import murray_split


def phantom(size: int = 64, count: int | None = 3, seed: int = 0, **options):
    return load_dataset(DataConfig(dataset="fundus.phantom", size=size, count=count, seed=seed, options=options))


def test_registered_with_fundus_spec():
    reg = get_registries()
    for name in ("fundus.phantom", "fundus.drive", "fundus.chase_db1", "fundus.hrf", "fundus.stare"):
        assert name in reg.datasets
    ds = phantom()
    spec = ds.spec
    assert (spec.classes, spec.encoding, spec.channels, spec.size, spec.domain, spec.has_roi) == (
        ("background", "vessel"), "index", 3, 64, "fundus", True)
    assert len(phantom(count=None)) == 40


def test_sample_layout_and_field_of_view():
    s = phantom(size=96)[0]
    assert s.image.shape == (3, 96, 96) and s.image.dtype == np.float32
    assert s.label.shape == (2, 96, 96) and s.label.dtype == np.float32
    assert set(np.unique(s.label)) == {0.0, 1.0}
    assert np.array_equal(s.label.sum(axis=0), np.ones((96, 96)))  # one-hot incl. background
    assert s.roi.dtype == bool and np.array_equal(s.roi, disc_fov(96))
    assert s.roi.mean() == pytest.approx(math.pi * FOV_RADIUS_FRACTION**2, abs=0.02)
    assert s.image[:, ~s.roi].max() < 0.05  # black outside the FOV
    assert s.image[:, s.roi].mean() > 0.15
    assert not s.label[1][~s.roi].any()  # no vessel outside the FOV
    assert s.meta["eye"] in ("left", "right")


def test_deterministic_per_seed_and_index():
    a, b = phantom(seed=3)[1], phantom(seed=3)[1]
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.label, phantom(seed=4)[1].label)
    assert not np.array_equal(a.label, phantom(seed=3)[2].label)
    assert a.id != phantom(seed=3)[2].id


def test_same_anatomy_at_every_size():
    """Case i at 256 px, reduced to 64 px, lies on the vessels of case i rendered at 64 px.

    (Reduction drops the thinnest vessels by majority vote and merges a few close ones,
    so the maps are not equal; speckle of the same density would score about 0.07.)
    """
    small, large = phantom(size=64)[0], phantom(size=256)[0]
    assert small.meta == large.meta
    reduced = resize_label(torch.from_numpy(large.label), 64, "index")[1].numpy() > 0
    near_small = ndimage.binary_dilation(small.label[1] > 0)
    assert reduced.sum() >= 30
    assert (reduced & near_small).sum() / reduced.sum() > 0.6


def test_vessels_are_dark_connected_trees():
    ds = phantom(size=192, count=4)
    labels = torch.stack([torch.from_numpy(ds[i].label) for i in range(len(ds))])
    figures = vessel_plausibility(labels, ds.spec)
    assert figures["largest_tree_share"] > 0.9
    assert 0.01 < figures["vessel_density"] < 0.15
    assert figures["width_mean_px"] > 1.05 and figures["thin_share"] < 0.98  # trunks wider than branches
    for s in (ds[0], ds[1]):
        green = s.image[1]
        vessel, retina = s.label[1] > 0, s.roi & (s.label[1] == 0)
        assert green[vessel].mean() < 0.85 * green[retina].mean()


def test_murray_law_bifurcation():
    r1, r2, a1, a2 = murray_split(1.0, 0.5)
    assert r1**3 + r2**3 == pytest.approx(1.0)
    assert r2 == pytest.approx(0.5 * r1)
    assert a2 > a1  # the thinner child leaves at the larger angle
    _, _, s1, s2 = murray_split(1.0, 1.0)
    assert math.degrees(s1) == pytest.approx(37.47, abs=0.05) and s1 == pytest.approx(s2)


def test_lesions_do_not_touch_the_label():
    with_lesions, without = phantom(lesion_probability=1.0), phantom(lesion_probability=0.0)
    assert np.array_equal(with_lesions[0].label, without[0].label)
    assert any(with_lesions[i].meta["exudates"] + with_lesions[i].meta["haemorrhages"] > 0 for i in range(3))
    assert all(without[i].meta["exudates"] == 0 for i in range(3))


def test_option_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"no option 'lesions'.*lesion_probability"):
        phantom(lesions=1)
    with pytest.raises(ConfigError, match=r"data.options.lesion_probability.*\[0, 1\]"):
        phantom(lesion_probability=2)
    with pytest.raises(IndexError, match="3 cases"):
        phantom()[3]


@pytest.mark.slow
def test_renders_at_1024():
    s = phantom(size=1024, count=1)[0]
    assert s.image.shape == (3, 1024, 1024)
    assert 0.03 < s.label[1].mean() < 0.12
