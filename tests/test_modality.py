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
)
def test_resize_never_invents_label_values(k, size_in, size_out, encoding, seed):
    g = torch.Generator().manual_seed(seed)
    if encoding == "index":
        lab = index_to_channels(torch.randint(0, k, (size_in, size_in), generator=g), k)
    else:
        lab = (torch.rand(k, size_in, size_in, generator=g) > 0.5).float()
    out = resize_label(lab, size_out, encoding)
    assert out.shape == (k, size_out, size_out)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    if encoding == "index":
        assert torch.equal(out.sum(0), torch.ones(size_out, size_out))
    assert torch.equal(harden(out, encoding), out)
