"""The fundus stages: registration, FOV learning and enforcement, speck removal, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msaug import BatchRNG, Budget, CheckpointError, DataConfig, FitContext, Image, Label, Noise, Pairs, get_registries, load_dataset
from msaug_fundus import disc_fov, fundus_spec
from msaug_fundus.stages import remove_specks, restrict_to_fov

CLASSES = ("background", "vessel")
TINY = {"width": 4, "batch_size": 2, "sample_every": 1000, "checkpoint_every": 1000}


def onehot(vessels: torch.Tensor) -> torch.Tensor:
    v = vessels.float()
    return torch.stack([1 - v, v], dim=1)


def test_registered_with_domain_defaults():
    reg = get_registries()
    spec = fundus_spec(128)
    make = lambda name, params=None: reg.stages.get(name)(params or {}, spec)  # noqa: E731
    mask, up, image, joint = (make(n) for n in ("fundus.vessel_mask", "fundus.mask_upscale", "fundus.image", "fundus.joint"))
    assert mask.input == Noise(128) and mask.output == Label(CLASSES, 64, "index", "max")
    assert up.input == Label(CLASSES, 64, "index", "max") and up.output == Label(CLASSES, 128, "index", "max")
    assert image.input == Label(CLASSES, 128, "index", "max") and image.output == Image(3, 128)
    assert joint.outputs == (Image(3, 128), Label(CLASSES, 128, "index", "max"))
    assert mask.params.min_component_px == 3
    assert torch.equal(mask.fov, torch.from_numpy(disc_fov(64)).float())  # before fitting: the phantom's disc


def test_restrict_to_fov_keeps_one_hot():
    vessels = torch.ones(1, 6, 6)
    fov = torch.zeros(6, 6)
    fov[1:5, 1:5] = 1
    out = restrict_to_fov(onehot(vessels), fov, CLASSES, "index")
    assert torch.equal(out[0, 1], fov) and torch.equal(out.sum(dim=1), torch.ones(1, 6, 6))


def test_remove_specks_drops_small_components_only():
    v = torch.zeros(2, 10, 10)
    v[0, 2, 1:9] = 1  # an 8-pixel vessel
    v[0, 7, 7] = 1  # a speck
    v[1, 5, 5] = 1
    v[1, 6, 6] = 1  # 2 pixels, diagonally connected
    out = remove_specks(onehot(v), 3, CLASSES, "index")
    assert out[0, 1].sum() == 8 and out[0, 1, 7, 7] == 0 and out[0, 0, 7, 7] == 1
    assert out[1, 1].sum() == 0
    assert torch.equal(remove_specks(onehot(v), 2, CLASSES, "index")[1], onehot(v)[1])
    assert torch.equal(remove_specks(onehot(v), 0, CLASSES, "index"), onehot(v))


@pytest.fixture(scope="module")
def tiny_data():
    ds = load_dataset(DataConfig(dataset="fundus.phantom", size=32, count=4))
    samples = [ds[i] for i in range(len(ds))]
    labels = torch.stack([torch.from_numpy(s.label) for s in samples])
    images = torch.stack([torch.from_numpy(s.image) for s in samples])
    roi = torch.zeros(4, 32, 32, dtype=torch.bool)
    roi[:, 6:26, 2:30] = True  # an HRF-like clipped field of view, unlike the phantom's disc
    return ds.spec, labels, images, roi


def fit(name, params, spec, pairs_for, tmp_path):
    stage = get_registries().stages.get(name)({**TINY, **params}, spec)
    summary = stage.fit(pairs_for(stage), Budget(steps=2), FitContext(out_dir=tmp_path, show_progress=False))
    return stage, summary


@pytest.mark.slow
def test_vessel_mask_learns_the_fov_and_saves_it(tiny_data, tmp_path):
    spec, labels, _, roi = tiny_data
    stage, summary = fit("fundus.vessel_mask", {"size": 32}, spec, lambda st: Pairs(st.input, st.output, None, labels, roi=roi), tmp_path)
    assert summary["fov_share"] == pytest.approx(20 * 28 / 32**2)
    rng = lambda: BatchRNG.for_indices(0, range(3))  # noqa: E731
    out = stage.generate(None, rng())
    assert out.shape == (3, 2, 32, 32) and torch.equal(out.sum(dim=1), torch.ones(3, 32, 32))
    outside = ~roi[0]
    assert out[:, 1][:, outside].sum() == 0
    state = stage.state_dict()
    assert torch.equal(state["fov"], roi[0].float())
    fresh = get_registries().stages.get("fundus.vessel_mask")({**TINY, "size": 32}, spec)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.generate(None, rng()), out)
    state.pop("fov")
    with pytest.raises(CheckpointError, match=r"lacks a 32x32 'fov' tensor"):
        fresh.load_state_dict(state)


@pytest.mark.slow
def test_image_and_joint_are_black_outside_the_fov(tiny_data, tmp_path):
    spec, labels, images, roi = tiny_data
    image_stage, _ = fit("fundus.image", {}, spec, lambda st: Pairs(st.input, st.output, labels, images, roi=roi), tmp_path / "a")
    fake = image_stage.generate(labels[:2], BatchRNG.for_indices(0, [0, 1]))
    assert fake.shape == (2, 3, 32, 32)
    assert fake[:, :, ~roi[0]].abs().max() == 0 and fake[:, :, roi[0]].max() > 0
    joint, _ = fit("fundus.joint", {}, spec, lambda st: Pairs(st.input, st.output, None, (images, labels), roi=roi), tmp_path / "b")
    image, label = joint.generate(None, BatchRNG.for_indices(0, [0, 1]))
    assert image[:, :, ~roi[0]].abs().max() == 0 and label[:, 1][:, ~roi[0]].sum() == 0


@pytest.mark.slow
def test_upscaler_without_roi_falls_back_to_the_disc(tiny_data, tmp_path):
    spec, labels, _, _ = tiny_data
    small = torch.nn.functional.interpolate(labels, size=16, mode="nearest")
    stage, summary = fit("fundus.mask_upscale", {"in_size": 16}, spec, lambda st: Pairs(st.input, st.output, small, labels), tmp_path)
    assert torch.equal(stage.fov, torch.from_numpy(disc_fov(32)).float())
    out = stage.generate(small[:2], BatchRNG.for_indices(0, [0, 1]))
    assert out.shape == (2, 2, 32, 32) and out[:, 1][:, ~torch.from_numpy(disc_fov(32))].sum() == 0


def test_low_resolution_views_keep_the_vessel_tree():
    """The vessel_mask stage at 32 px trains on connected trees, not on the specks that an
    area resize of 1-3 px vessels leaves; the upscaler reads its input as a where-allowed mask."""
    from scipy import ndimage

    from msaug.resize import resize_label

    ds = load_dataset(DataConfig(dataset="fundus.phantom", size=128, count=3))
    mask = get_registries().stages.get("fundus.vessel_mask")({"size": 32}, ds.spec)
    up = get_registries().stages.get("fundus.mask_upscale")({"in_size": 32}, ds.spec)
    assert up.generator.prior == "max"
    for i in range(len(ds)):
        full = torch.from_numpy(ds[i].label)
        view = mask.output.view(ds[i])[1].numpy() > 0.5
        by_area = resize_label(full, 32, "index", "area")[1]
        components, _ = ndimage.label(view, structure=np.ones((3, 3)))
        sizes = np.bincount(components.ravel())[1:]
        assert view.mean() > 0.05 and by_area.mean() < 0.02
        assert sizes.max() / sizes.sum() > 0.9  # nearly all vessel pixels in one tree
        # every vessel pixel at 128 px lies inside a vessel block of the 32 px view
        blocks = np.kron(view, np.ones((4, 4), dtype=bool))
        assert not (full[1].numpy().astype(bool) & ~blocks).any()
