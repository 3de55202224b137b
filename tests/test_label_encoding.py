"""The label encoding's rules (msaug.label_encoding) and the Label / DataSpec methods that offer them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msaug import DataSpec, DataError, Label
from msaug import label_encoding as le
from msaug.resize import resize_label


def test_probabilities_softmax_for_index_sigmoid_for_multilabel():
    logits = torch.tensor([[[[0.0]], [[1.0]], [[2.0]]]])  # [1, 3, 1, 1]
    index = le.probabilities(logits, "index")
    e = np.exp([0.0, 1.0, 2.0])
    assert index.shape == (1, 3, 1, 1) and index.dtype == torch.float32
    assert np.allclose(index[0, :, 0, 0].numpy(), e / e.sum())
    multi = le.probabilities(logits, "multilabel")
    assert np.allclose(multi[0, :, 0, 0].numpy(), 1 / (1 + np.exp([-0.0, -1.0, -2.0])))
    # half-precision logits come back as float32, as the engine's training heads need
    assert le.probabilities(logits.half(), "index").dtype == torch.float32
    # [K, H, W] maps (no batch) are treated per channel the same way
    assert torch.equal(le.probabilities(logits[0], "index"), index[0])


def test_hardening_logits_and_scores_for_both_encodings():
    logits = torch.tensor([[[[-1.0, 0.0]], [[2.0, -3.0]], [[0.5, 0.0]]]])  # [1, 3, 1, 2]
    index = le.harden_logits(logits, "index")
    assert index.shape == (1, 3, 1, 2)
    assert index[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0] and index[0, :, 0, 1].tolist() == [1.0, 0.0, 0.0]
    multi = le.harden_logits(logits, "multilabel")
    assert multi[0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    assert multi[0, :, 0, 1].tolist() == [0.0, 0.0, 0.0]  # a logit of exactly 0 is off (strict), a score of 0.5 is on
    scores = torch.tensor([[[0.5]], [[0.49]]])
    assert le.harden(scores, "multilabel")[:, 0, 0].tolist() == [1.0, 0.0]
    assert le.harden(scores, "index")[:, 0, 0].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown label encoding 'onehot'"):
        le.harden_logits(logits, "onehot")


def test_foreground_channels():
    assert le.foreground_channels(3, "index") == (1, 2)
    assert le.foreground_channels(1, "index") == ()
    assert le.foreground_channels(3, "multilabel") == (0, 1, 2)
    assert Label(("background", "vessel"), 8).foreground_channels == (1,)
    assert Label(("lung", "heart"), 8, "multilabel").foreground_channels == (0, 1)
    assert DataSpec(("lung", "heart", "clavicle"), "multilabel", 1, 8).foreground_channels == (0, 1, 2)
    assert DataSpec(("background", "optic disc", "vessel"), "index", 3, 8).foreground_channels == (1, 2)


@pytest.mark.parametrize("encoding", ["index", "multilabel"])
def test_file_round_trip_and_description(encoding):
    classes = ("a", "b", "c")
    g = torch.Generator().manual_seed(0)
    if encoding == "index":
        label = le.index_to_channels(torch.randint(0, 3, (5, 6), generator=g), 3)
    else:
        label = (torch.rand(3, 5, 6, generator=g) > 0.5).float()
    spec_label = Label(classes, 6, encoding)
    array = spec_label.to_file(label)
    assert array.shape == (5, 6) and array.dtype == np.uint8
    expected = label.argmax(dim=0) if encoding == "index" else (label[0] + 2 * label[1] + 4 * label[2])
    assert np.array_equal(array, expected.numpy().astype(np.uint8))
    assert torch.equal(spec_label.from_file(array), label)
    assert [le.file_value(k, encoding) for k in range(3)] == ([0, 1, 2] if encoding == "index" else [1, 2, 4])
    if encoding == "index":
        assert spec_label.file_format == "class index" and le.file_format(encoding, per_pixel=True) == "class index per pixel"
    else:
        assert spec_label.file_format == "bit mask, bit k = channel k"
        assert le.file_format(encoding, per_pixel=True) == "bit mask per pixel, bit k = channel k"


def test_from_file_rejects_values_outside_the_classes():
    with pytest.raises(DataError, match=r"x\.png: label value 3 is outside the declared classes; valid values: 0\.\.2 \(class indices\)"):
        Label(("a", "b", "c"), 2).from_file(np.array([[0, 3]]), "x.png")
    with pytest.raises(DataError, match=r"valid values: bit masks 0\.\.3 \(2 channels\)"):
        le.from_file(np.array([[4]]), 2, "multilabel", "y.png")


def test_more_than_eight_multilabel_channels_are_stored_in_16_bits():
    label = torch.zeros(9, 1, 1)
    label[8] = 1.0
    array = le.to_file(label, "multilabel")
    assert array.dtype == np.uint16 and int(array[0, 0]) == 256


def test_data_spec_at_and_with_label_keep_every_other_field():
    spec = DataSpec(("background", "vessel"), "index", 3, 64, "fundus", has_roi=True, label_downsample="max", patches=True)
    small = spec.at(16)
    assert (small.size, small.has_roi, small.label_downsample, small.patches, small.domain, small.channels) == (16, True, "max", True, "fundus", 3)
    derived = spec.with_label(Label(("background", "vessel"), 32, "index", "area"))
    assert (derived.size, derived.label_downsample, derived.has_roi, derived.patches, derived.channels) == (32, "area", True, True, 3)
    assert spec.label.at(8) == Label(("background", "vessel"), 8, "index", "max")


def test_label_resize_follows_its_downsampling_policy():
    vessel = torch.zeros(2, 8, 8)
    vessel[1, :, 3] = 1.0  # a 1-px vertical vessel
    vessel[0] = 1.0 - vessel[1]
    by_max = Label(("background", "vessel"), 8, "index", "max").resize(vessel, 2)
    by_area = Label(("background", "vessel"), 8, "index", "area").resize(vessel, 2)
    assert torch.equal(by_max, resize_label(vessel, 2, "index", "max")) and torch.equal(by_area, resize_label(vessel, 2, "index", "area"))
    assert by_max[1].sum() == 2 and by_area[1].sum() == 0  # max pooling keeps the vessel, area loses it


def _vessel_sample(size: int = 8) -> tuple:
    from msaug import Sample

    label = np.zeros((2, size, size), np.float32)
    label[1, :, 3] = 1.0  # a 1-px vertical vessel
    label[0] = 1.0 - label[1]
    return Sample("v", np.full((3, size, size), 0.5, np.float32), label)


@pytest.mark.parametrize("policy, vessel_pixels", [("max", 2), ("area", 0)])
def test_loading_a_sample_at_a_smaller_size_follows_the_data_policy(policy, vessel_pixels):
    """Vessel maps (``max``) keep a 1-px vessel at a quarter of the size; shrunk by area it vanishes."""
    from msaug.builtin.datasets import resize_sample

    spec = DataSpec(("background", "vessel"), "index", 3, 2, label_downsample=policy)
    out = resize_sample(_vessel_sample(), spec)
    assert out.label.shape == (2, 2, 2) and int(out.label[1].sum()) == vessel_pixels
    assert np.array_equal(out.label.sum(axis=0), np.ones((2, 2)))  # still one-hot


@pytest.mark.parametrize("policy, vessel_pixels", [("max", 2), ("area", 0)])
def test_report_real_label_maps_follow_the_data_policy(policy, vessel_pixels):
    from msaug.pipeline.report import real_label_maps

    spec = DataSpec(("background", "vessel"), "index", 3, 2, label_downsample=policy)
    maps = real_label_maps([_vessel_sample(), _vessel_sample()], spec)
    assert maps.shape == (2, 2, 2, 2) and int(maps[:, 1].sum()) == 2 * vessel_pixels


def test_synthetic_data_at_the_pipeline_size_keeps_its_policy_and_marks_patches_only_at_their_own_size(tmp_path):
    from msaug.builtin.datasets import ResizedSynthetic
    from msaug.data import DataConfig
    from msaug.synthetic import SyntheticWriter

    spec = DataSpec(("background", "vessel"), "index", 3, 16, "fundus", label_downsample="max", patches=True)
    SyntheticWriter(tmp_path / "synthetic", spec)
    (tmp_path / "synthetic" / "manifest.jsonl").write_text("")
    same = ResizedSynthetic(DataConfig(dataset="synthetic", root=str(tmp_path / "synthetic"), size=16)).spec
    assert same == spec
    smaller = ResizedSynthetic(DataConfig(dataset="synthetic", root=str(tmp_path / "synthetic"), size=8)).spec
    assert (smaller.size, smaller.label_downsample, smaller.domain, smaller.patches) == (8, "max", "fundus", False)


def test_stage_probe_label_spec_keeps_the_data_fields():
    from msaug.segment.stage_probe import label_spec

    spec = DataSpec(("background", "vessel"), "index", 3, 64, "fundus", has_roi=True, label_downsample="max", patches=True)
    derived = label_spec(Label(("background", "vessel"), 16, "index", "max"), spec)
    assert derived == DataSpec(("background", "vessel"), "index", 3, 16, "fundus", has_roi=True, label_downsample="max", patches=True)
