"""MixedDataset ratios, batch shares and joint augmentation."""

from __future__ import annotations

import pytest
import torch

from msaug.segment.data import Augmentation, MixedDataset, to_tensors
from msaug.segment.train import shares_to_counts


def test_mixed_dataset_holds_the_ratio_in_every_window(toy):
    real, synth = toy(10, 16, seed=0), toy(7, 16, seed=1)
    mixed = MixedDataset(real, synth, ratio=0.3)
    assert len(mixed) == 15  # 10 real items are 70%
    flags = [mixed.is_synthetic(i) for i in range(len(mixed))]
    assert sum(flags) == 4 and len(flags) - sum(flags) >= 10
    for start in range(len(mixed) - 10):
        assert abs(sum(flags[start : start + 10]) - 3) <= 1
    real_t = to_tensors(real, 16)
    seen_real = [mixed[i][0] for i in range(len(mixed)) if not flags[i]]
    assert all(any(torch.equal(x, y) for y in seen_real) for x in real_t.images)  # every real pair once per pass
    image, label, roi = mixed[0]
    assert image.shape == (1, 16, 16) and label.shape == (2, 16, 16) and roi.dtype == torch.bool


def test_mixed_dataset_rejects_an_impossible_ratio(toy):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MixedDataset(toy(2, 16), toy(2, 16), ratio=1.0)


def test_shares_become_exact_batch_counts():
    assert shares_to_counts([0.5, 0.5], 8) == [4, 4]
    assert shares_to_counts([0.7, 0.3], 8) == [6, 2]
    assert sum(shares_to_counts([1, 1, 1], 8)) == 8


@pytest.mark.parametrize("encoding", ["index", "multilabel"])
def test_augmentation_keeps_labels_hard_and_aligned(toy, encoding):
    data = to_tensors(toy(6, 32, encoding, roi=True), 32)
    aug = Augmentation(rotate_degrees=20, flip=True, probability=1.0)
    images, labels, roi = aug(data.images, data.labels, data.roi, torch.Generator().manual_seed(0))
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    if encoding == "index":
        assert torch.all(labels.sum(dim=1) == 1)
    assert images.min() >= 0 and images.max() <= 1 and roi.dtype == torch.bool
    assert not torch.equal(labels, data.labels)
    # the disc stays under the bright pixels: geometry was applied to image and label together
    disc = labels[:, 0 if encoding == "multilabel" else 1].bool()
    assert images[:, 0][disc].mean() > images[:, 0][~disc].mean() + 0.3
    again = aug(data.images, data.labels, data.roi, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], images)  # deterministic given the seed
