"""Metric values against hand-computed cases, including empty masks and the ROI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from msaug.segment.metrics import dice_per_image, foreground_classes, hd95, image_metrics, summarize


def two_class(fg: np.ndarray) -> torch.Tensor:
    fg_t = torch.as_tensor(fg, dtype=torch.float32)
    return torch.stack([1 - fg_t, fg_t])


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
    return m


def test_partial_overlap_matches_hand_computed_counts():
    # truth: 2x2 square (4 px); prediction: 2x3 rectangle over it (6 px) -> tp 4, fp 2, fn 0, tn 10
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True
    m = image_metrics(two_class(pred), two_class(pred), two_class(truth))
    assert m["dice"][1] == pytest.approx(8 / 10)
    assert m["iou"][1] == pytest.approx(4 / 6)
    assert m["accuracy"][1] == pytest.approx(14 / 16)
    assert m["sensitivity"][1] == pytest.approx(1.0)
    assert m["specificity"][1] == pytest.approx(10 / 12)
    # background channel: tp 10, fp 0, fn 2
    assert m["dice"][0] == pytest.approx(20 / 22)


def test_auc_uses_probabilities():
    truth = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    probs = torch.tensor([[[0.1, 0.6, 0.4, 0.9]]])  # pairs (pos, neg) ranked right: 3 of 4
    m = image_metrics(probs, (probs > 0.5).float(), truth)
    assert m["auc"][0] == pytest.approx(0.75)


def test_empty_masks_follow_the_documented_conventions():
    empty = np.zeros((8, 8), bool)
    both_empty = image_metrics(two_class(empty), two_class(empty), two_class(empty))
    assert both_empty["dice"][1] == 1.0 and both_empty["iou"][1] == 1.0
    assert both_empty["hd95"][1] == 0.0
    assert math.isnan(both_empty["sensitivity"][1]) and math.isnan(both_empty["auc"][1])
    assert both_empty["specificity"][1] == 1.0

    missed = image_metrics(two_class(empty), two_class(empty), two_class(square(8, 2, 2, 3)))
    assert missed["dice"][1] == 0.0 and missed["sensitivity"][1] == 0.0
    assert math.isnan(missed["hd95"][1])


def test_hd95_of_a_shifted_square_is_the_shift():
    assert hd95(square(32, 5, 5, 10), square(32, 5, 8, 10)) == pytest.approx(3.0)
    assert hd95(square(32, 5, 5, 10), square(32, 5, 5, 10)) == 0.0


def test_roi_excludes_pixels_outside_it():
    truth = square(8, 0, 0, 4)
    pred = truth.copy()
    pred[6:, 6:] = True  # false positives, all outside the ROI
    roi = torch.ones(8, 8, dtype=torch.bool)
    roi[5:, 5:] = False
    inside = image_metrics(two_class(pred), two_class(pred), two_class(truth), roi)
    everywhere = image_metrics(two_class(pred), two_class(pred), two_class(truth))
    assert inside["dice"][1] == 1.0 and inside["hd95"][1] == 0.0
    assert everywhere["dice"][1] == pytest.approx(32 / 36)


def test_summary_averages_foreground_and_skips_undefined_values():
    a = {"dice": np.array([1.0, 0.5, 0.7]), "sensitivity": np.array([1.0, np.nan, 0.4])}
    b = {"dice": np.array([1.0, 0.9, 0.1]), "sensitivity": np.array([1.0, np.nan, np.nan])}
    for m in ("iou", "accuracy", "specificity", "auc", "hd95"):
        a[m] = b[m] = np.array([1.0, 1.0, 1.0])
    s = summarize([a, b], ("background", "lung", "heart"), "index")
    assert s["foreground"] == ["lung", "heart"]
    assert s["classes"]["lung"]["dice"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.2), "n": 2}
    assert s["mean"]["dice"]["mean"] == pytest.approx((0.6 + 0.5) / 2)
    assert s["classes"]["lung"]["sensitivity"] == {"mean": None, "std": None, "n": 0}
    assert s["mean"]["sensitivity"] == {"mean": pytest.approx(0.4), "std": pytest.approx(0.0), "n": 1}


def test_foreground_classes_and_fast_dice_agree_with_full_metrics():
    assert foreground_classes(("background", "vessel"), "index") == [1]
    assert foreground_classes(("lung", "clavicle"), "multilabel") == [0, 1]
    truth, pred = square(8, 0, 0, 4), square(8, 0, 0, 3)
    fast = dice_per_image(two_class(pred)[None], two_class(truth)[None], [1])
    assert float(fast[0]) == pytest.approx(image_metrics(two_class(pred), two_class(pred), two_class(truth))["dice"][1])
