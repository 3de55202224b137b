from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from msaug import Image, Label, Noise, Sample
from msaug.resize import bits_to_channels, channels_to_bits, harden, index_to_channels, resize_label


def sample(size: int = 32) -> Sample:
    index = torch.zeros(size, size, dtype=torch.long)
    index[8:24, 8:24] = 1
    index[12:16, 12:16] = 2
    return Sample("s", np.full((1, size, size), 0.5, np.float32), index_to_channels(index, 3).numpy())


def test_label_view_downsamples_label_safely():
    lab = Label(("bg", "a", "b"), 16, "index")
    view = lab.view(sample())
    assert view.shape == (3, 16, 16)
    assert set(view.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(view.sum(0), torch.ones(16, 16))  # exactly one class per pixel
    assert view[1, 4:12, 4:12].sum() > 0 and view[2, 6:8, 6:8].all()


def test_image_view_resizes_and_checks_channels():
    assert Image(1, 8).view(sample()).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="1 image channels, Image\\(3 ch, 8 px\\) expects 3"):
        Image(3, 8).view(sample())


def test_compatibility():
    a = Label(("bg", "x"), 64, "index")
    assert a.compatible(Label(("bg", "x"), 64, "index"))
    assert not a.compatible(a.at(128))
    assert not a.compatible(Label(("bg", "x"), 64, "multilabel"))
    assert Noise(128).compatible(Noise(4))
    assert not Image(1, 64).compatible(Image(3, 64))
    assert str(a) == "Label(2 classes, 64 px, index)"


def test_label_rejects_bad_encoding():
    with pytest.raises(ValueError, match="'index' or 'multilabel'"):
        Label(("a",), 8, "onehot")  # type: ignore[arg-type]


def test_multilabel_overlap_survives_resize():
    lab = torch.zeros(2, 32, 32)
    lab[0, 4:28, 4:20] = 1  # lung
    lab[1, 4:10, 2:30] = 1  # clavicle crossing it
    small = resize_label(lab, 16, "multilabel")
    assert (small[0] * small[1]).sum() > 0  # overlap kept
    big = resize_label(small, 64, "multilabel")
    assert set(big.unique().tolist()) <= {0.0, 1.0}


def test_bits_round_trip():
    lab = (torch.rand(5, 9, 9) > 0.5).float()
    assert torch.equal(bits_to_channels(channels_to_bits(lab), 5), lab)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 5),
    st.integers(4, 40),
    st.integers(4, 40),
    st.sampled_from(["index", "multilabel"]),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["area", "max"]),
)
def test_resize_never_invents_label_values(k, size_in, size_out, encoding, seed, downsample):
    g = torch.Generator().manual_seed(seed)
    if encoding == "index":
        lab = index_to_channels(torch.randint(0, k, (size_in, size_in), generator=g), k)
    else:
        lab = (torch.rand(k, size_in, size_in, generator=g) > 0.5).float()
    out = resize_label(lab, size_out, encoding, downsample)
    assert out.shape == (k, size_out, size_out)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    if encoding == "index":
        assert torch.equal(out.sum(0), torch.ones(size_out, size_out))
    assert torch.equal(harden(out, encoding), out)


def _vessel_tree(size: int = 128) -> torch.Tensor:
    """A 1-2 px wide branching line drawing, index encoding (background, vessel)."""
    vessel = torch.zeros(size, size, dtype=torch.bool)
    vessel[size // 2, 10 : size - 10] = True  # trunk, 1 px
    for x in range(20, size - 20, 24):  # branches, 1 px diagonals
        for t in range(30):
            vessel[size // 2 - t, x + t // 2] = True
    vessel[size // 2 + 1, 10 : size // 2] = True  # thicker proximal trunk, 2 px
    return torch.stack([~vessel, vessel]).float()


@pytest.mark.parametrize("encoding", ["index", "multilabel"])
def test_max_downsampling_keeps_thin_structures_connected(encoding):
    from scipy import ndimage

    tree = _vessel_tree()
    lab = tree if encoding == "index" else tree[1:]
    channel = 1 if encoding == "index" else 0
    area = resize_label(lab, 32, encoding, "area")
    pooled = resize_label(lab, 32, encoding, "max")
    # by area, 1 px lines at a quarter of the size are mostly gone
    assert area[channel].sum() < 0.3 * pooled[channel].sum()
    # max pooled: every vessel pixel's 4x4 block is vessel, and the tree is one component
    blocks = lab[channel].reshape(32, 4, 32, 4).amax(dim=(1, 3))
    assert torch.equal(pooled[channel], blocks)
    _, components = ndimage.label(pooled[channel].numpy() > 0.5, structure=np.ones((3, 3)))
    assert components == 1
    if encoding == "index":
        assert torch.equal(pooled.sum(0), torch.ones(32, 32))


def test_max_downsampling_lets_the_most_occupied_structure_win():
    lab = torch.zeros(3, 4, 4)
    lab[1, :, :3] = 1  # class 1 covers 12 of 16 pixels
    lab[2, :, 3] = 1  # class 2 covers 4
    lab[0] = 1 - lab[1:].sum(0)
    assert resize_label(lab, 1, "index", "max")[:, 0, 0].tolist() == [0.0, 1.0, 0.0]
    lab[1:, :, :] = 0
    lab[2, 0, 0] = 1  # one pixel of class 2 in a block of background
    lab[0] = 1 - lab[1:].sum(0)
    assert resize_label(lab, 1, "index", "max")[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert resize_label(lab, 1, "index", "area")[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_label_carries_its_downsampling_policy():
    tree = _vessel_tree()
    label = Label(("background", "vessel"), 32, "index", "max")
    assert label.at(64).downsample == "max"
    assert "max-pooled" in str(label)
    assert not label.compatible(Label(("background", "vessel"), 32, "index"))
    view = label.view(Sample("s", None, tree.numpy()))
    assert torch.equal(view, resize_label(tree, 32, "index", "max"))
    with pytest.raises(ValueError, match="downsample"):
        Label(("background", "vessel"), 32, "index", "median")
    with pytest.raises(ValueError, match="unknown label downsampling policy"):
        resize_label(tree, 32, "index", "median")


def test_core_label_resize_shrinks_by_the_data_policy_and_smooths_when_enlarging():
    from msaug import BatchRNG, DataSpec, get_registries

    tree = _vessel_tree()[None]
    resize = get_registries().stages.get("core.label_resize")
    for policy in ("area", "max"):
        spec = DataSpec(("background", "vessel"), "index", 1, 32, label_downsample=policy)
        down = resize({"in_size": 128}, spec).generate(tree, BatchRNG.for_indices(0, [0]))
        assert torch.equal(down, resize_label(tree, 32, "index", policy))
    spec = DataSpec(("background", "vessel"), "index", 1, 128, label_downsample="max")
    coarse = resize_label(tree, 32, "index", "max")
    up = resize({"in_size": 32}, spec).generate(coarse, BatchRNG.for_indices(0, [0]))
    assert up.shape == (1, 2, 128, 128) and torch.equal(up.sum(1), torch.ones(1, 128, 128))


def test_downsampling_policy_is_checked_and_survives_the_synthetic_folder(tmp_path):
    import json

    from msaug import DataSpec
    from msaug.errors import DataError
    from msaug.synthetic import SyntheticDataset, SyntheticWriter

    with pytest.raises(ValueError, match="DataSpec label_downsample: unknown label downsampling policy 'mean'; valid: area, max"):
        DataSpec(("background", "vessel"), "index", 3, 32, label_downsample="mean")
    spec = DataSpec(("background", "vessel"), "index", 3, 32, label_downsample="max")
    SyntheticWriter(tmp_path / "synthetic", spec)
    (tmp_path / "synthetic" / "manifest.jsonl").write_text("")  # a folder with no pairs yet
    assert SyntheticDataset(tmp_path / "synthetic").spec == spec
    description = tmp_path / "synthetic" / "dataset.json"
    broken = {**json.loads(description.read_text()), "label_downsample": "mean"}
    description.write_text(json.dumps(broken))
    with pytest.raises(DataError, match="dataset.json: missing or invalid field .*'mean'"):
        SyntheticDataset(tmp_path / "synthetic")
