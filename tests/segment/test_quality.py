"""Pair QC, memorisation audit, label and image realism on planted cases."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msaug import CheckpointError, DataSpec
from msaug.segment.audit import memorisation_audit
from msaug.segment.data import SegmentationTensors, to_tensors
from msaug.segment.label_realism import label_diversity, label_realism, nearest_neighbour_iou, shape_statistics
from msaug.segment.similarity import label_iou_matrix
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


def test_label_diversity_tells_a_collapsed_generator_from_a_varied_one(toy):
    real = to_tensors(toy(10, 32, seed=0), 32)
    spec = DataSpec(("background", "disc"), "index", 1, 32)
    varied = label_diversity(real.labels, spec)
    collapsed = label_diversity(real.labels[[3] * 10], spec)
    assert collapsed == pytest.approx(1.0)
    assert 0.0 < varied < 0.9
    assert label_diversity(real.labels[:1], spec) is None
    full = label_realism(real.labels[[3] * 10], real.labels, spec)
    assert full["diversity"]["synthetic"] == pytest.approx(1.0) and full["diversity"]["real"] == pytest.approx(varied)


def vessel_lines(rows: list[int], size: int = 128) -> torch.Tensor:
    """Index maps ``[N, 2, size, size]``, each with one 1-px horizontal vessel at the given row."""
    maps = torch.zeros(len(rows), 2, size, size)
    maps[:, 0] = 1
    for i, row in enumerate(rows):
        maps[i, 0, row, 8:-8], maps[i, 1, row, 8:-8] = 0, 1
    return maps


def test_label_similarity_keeps_thin_vessels_under_the_max_policy():
    # rows 20 and 61: two different vessels; at 64 px each covers half of its 2x2 cells
    a, b = vessel_lines([20]), vessel_lines([61])
    # by area the vessels vanish, so the two different maps "agree" that nothing is there
    assert label_iou_matrix(a, b, [1], "index", 64, "area").item() == pytest.approx(1.0)
    assert label_iou_matrix(a, b, [1], "index", 64, "max").item() == pytest.approx(0.0)
    assert label_iou_matrix(a, a, [1], "index", 64, "max").item() == pytest.approx(1.0)
    thin = DataSpec(("background", "vessel"), "index", 3, 128, label_downsample="max")
    maps = vessel_lines([20, 61, 100])
    assert nearest_neighbour_iou(maps[:1], maps[1:], thin)["precision"] == pytest.approx(0.0)
    assert label_diversity(maps, thin) == pytest.approx(0.0)
    copies = memorisation_audit(
        to_tensors_like(maps), to_tensors_like(maps[[1]]), thin.classes, "index", downsample="max"
    )
    assert copies["label_near_copies"] == 1 and copies["baseline_real_label_iou"] == pytest.approx(0.0)


def to_tensors_like(labels: torch.Tensor) -> SegmentationTensors:
    n, _, h, w = labels.shape
    images = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(n))
    return SegmentationTensors(images, labels, torch.ones(n, 1, h, w), [f"case-{i}" for i in range(n)])


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


def _inception_file(path, logits: int):
    """An Inception v3 state dict in the layout both torchvision and torch-fidelity use, random weights
    (PyTorch's default initialisation: small features, but no overflow through the 94 layers)."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    net.fc = nn.Linear(2048, logits)
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
def test_fid_uses_the_reference_network_when_given_its_weights_and_says_otherwise_for_torchvision(tmp_path, toy):
    """Weights with the reference network's 1008 logits run torch-fidelity's FID Inception ("fid");
    torchvision's 1000-logit ImageNet weights are reported under another name, as not FID."""
    pytest.importorskip("torch_fidelity")
    from msaug.segment.realism import ReferenceInceptionFeatures, inception_kind

    reference = _inception_file(tmp_path / "weights-inception-2015-12-05.pth", 1008)
    imagenet = _inception_file(tmp_path / "inception_v3.pth", 1000)
    assert inception_kind(reference) == "reference" and inception_kind(imagenet) == "torchvision"
    images = to_tensors(toy(6, 32, seed=0), 32).images
    features = ReferenceInceptionFeatures(reference)(images)
    assert features.shape == (6, 2048) and torch.isfinite(features).all()
    same = image_realism(images, images, None, reference)
    shifted = image_realism(images, images * 0.3, None, reference)
    assert set(same) >= {"fid", "kid", "kid_std", "inception_weights"} and "inception_fd" not in same
    assert shifted["fid"] > 0 and abs(same["fid"]) < 1e-3 * shifted["fid"]  # random weights: small features, so relative
    other = image_realism(images, images * 0.3, None, imagenet)
    assert "fid" not in other and other["inception_fd"] > 0 and "not the FID reference network" in other["inception_network"]


def test_inception_weights_of_another_network_are_refused_naming_the_file(tmp_path):
    from msaug.segment.realism import inception_kind

    odd = tmp_path / "odd.pth"
    torch.save({"fc.weight": torch.zeros(10, 2048)}, odd)
    with pytest.raises(CheckpointError, match=r"odd\.pth: an Inception v3 with 10 logits; expected the FID reference"):
        inception_kind(odd)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "nofc.pth")
    with pytest.raises(CheckpointError, match="no fc.weight"):
        inception_kind(tmp_path / "nofc.pth")
