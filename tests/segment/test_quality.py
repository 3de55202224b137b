"""Pair QC, memorisation audit, label and image realism on planted cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msaug import CheckpointError, DataSpec
from msaug.segment.audit import memorisation_audit
from msaug.segment.data import SegmentationTensors, to_tensors
from msaug.segment.label_realism import label_realism, nearest_neighbour_iou, shape_statistics
from msaug.segment.qc import score_pairs, select
from msaug.segment.realism import InceptionFeatures, image_realism
from msaug.segment.segmenter import Segmenter, SegmenterInfo


class BrightnessThreshold(nn.Module):
    """A real (if simple) segmenter for the toy discs: pixels brighter than 0.5 are disc."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        disc = 40.0 * (x[:, :1] - 0.5)
        return torch.cat([torch.zeros_like(disc), disc], dim=1)


def threshold_segmenter(spec: DataSpec) -> Segmenter:
    return Segmenter(SegmenterInfo.for_spec(spec, "threshold", "none"), model=BrightnessThreshold())


def test_qc_scores_consistent_pairs_high_and_mismatched_pairs_low(toy):
    pairs = toy(8, 32, seed=3)
    data = to_tensors(pairs, 32)
    # pairs 0-3 keep their own label; pairs 4-7 get another case's label (image and label disagree)
    order = [0, 1, 2, 3, 5, 6, 7, 4]
    broken = SegmentationTensors(data.images, data.labels[order], data.roi, data.ids)
    scores = score_pairs(threshold_segmenter(pairs.spec), broken)
    assert min(scores[:4]) > 0.9
    assert max(scores[4:]) < 0.7
    assert select(scores, 0.8) == [0, 1, 2, 3]
    assert select(scores, None) == list(range(8))


def test_audit_flags_planted_near_copies_only(toy):
    train = to_tensors(toy(12, 32, seed=0), 32)
    fresh = to_tensors(toy(6, 32, seed=9), 32)
    noisy = train.images[[2, 5, 7]] + 0.01 * torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    copies = SegmentationTensors(noisy.clamp(0, 1), train.labels[[2, 5, 7]], train.roi[[2, 5, 7]], ["copy-a", "copy-b", "copy-c"])
    synthetic = SegmentationTensors.concat([fresh, copies])
    audit = memorisation_audit(train, synthetic, ("background", "disc"), "index")
    assert audit["pairs"] == 9 and audit["near_copies"] == 3
    flagged = {f["id"]: f for f in audit["flagged"]}
    assert set(flagged) == {"copy-a", "copy-b", "copy-c"}
    assert flagged["copy-b"]["image_neighbour"] == train.ids[5] and flagged["copy-b"]["kind"] == "image+label"
    assert audit["baseline_real_image_similarity"] < audit["thresholds"]["image_similarity"]


def test_nearest_neighbour_iou_separates_precision_from_coverage(toy):
    real = to_tensors(toy(10, 32, seed=0), 32)
    spec = DataSpec(("background", "disc"), "index", 1, 32)
    same = nearest_neighbour_iou(real.labels, real.labels, spec)
    assert same["precision"] == pytest.approx(1.0) and same["coverage"] == pytest.approx(1.0)
    collapsed = real.labels[[0] * 10]  # a generator that repeats one real map
    mode = nearest_neighbour_iou(collapsed, real.labels, spec)
    assert mode["precision"] == pytest.approx(1.0)
    assert mode["coverage"] < 0.9


def test_shape_statistics_of_a_known_map():
    label = torch.zeros(1, 2, 10, 10)
    label[0, 0, 0:2, 0:5] = 1  # 10 px, one component, centroid (0.05, 0.2)
    label[0, 1, 0:1, 0:1] = 1
    label[0, 1, 9:10, 9:10] = 1  # two single-pixel components
    stats = shape_statistics(label)
    assert stats["area"][0].tolist() == pytest.approx([0.1, 0.02])
    assert stats["components"][0].tolist() == [1, 2]
    assert stats["centroid_y"][0, 0] == pytest.approx(0.05) and stats["centroid_x"][0, 0] == pytest.approx(0.2)
    full = label_realism(label, label, DataSpec(("a", "b"), "multilabel", 1, 10))
    assert full["shapes"]["b"]["components"]["wasserstein"] == 0.0


def test_encoder_feature_distance_is_zero_for_identical_sets_and_grows_with_a_shift(toy):
    pairs = toy(16, 32, seed=0)
    spec = pairs.spec
    segmenter = Segmenter(SegmenterInfo.for_spec(spec, "unet", "tu-resnet10t", 32))
    images = to_tensors(pairs, 32).images
    same = image_realism(images, images, segmenter)
    darker = image_realism(images, images * 0.3, segmenter)
    assert same["encoder_fd"] == pytest.approx(0.0, abs=1e-3)
    assert darker["encoder_fd"] > 10 * max(same["encoder_fd"], 1e-6)
    assert "not FID" in same["feature_space"] and "fid" not in same


def test_inception_needs_a_real_local_weights_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        InceptionFeatures(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="Inception v3"):
        InceptionFeatures(tmp_path / "wrong.pth")
