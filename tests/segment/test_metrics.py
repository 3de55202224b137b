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


def random_mask_pairs(n: int, size: int = 48, seed: int = 17) -> list[tuple[np.ndarray, np.ndarray]]:
    """Blobs, thin bars, single pixels and holes: a truth and a perturbed prediction per pair."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    pairs = []
    for _ in range(n):
        masks = []
        for _ in range(2):
            m = np.zeros((size, size), bool)
            for _ in range(int(rng.integers(1, 4))):
                cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(1, size / 4)]
                m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            if rng.random() < 0.5:  # a one-pixel-wide bar, which the choice of edge pixels affects most
                m[int(rng.integers(0, size)), int(rng.integers(0, size // 2)) : int(rng.integers(size // 2, size))] = True
            m ^= rng.random((size, size)) < rng.choice([0.0, 0.01, 0.05])  # specks and holes
            masks.append(m)
        pairs.append((masks[0], masks[0] ^ (rng.random((size, size)) < 0.02) if rng.random() < 0.3 else masks[1]))
    return pairs


def test_hd95_equals_monai_on_random_mask_pairs():
    """msaug's HD95 is MONAI's compute_hausdorff_distance(percentile=95) wherever both masks have pixels."""
    from monai.metrics import compute_hausdorff_distance

    pairs = [(p, t) for p, t in random_mask_pairs(150) if p.any() and t.any()]
    assert len(pairs) >= 140
    pred = torch.as_tensor(np.stack([p for p, _ in pairs]))[:, None].float()
    target = torch.as_tensor(np.stack([t for _, t in pairs]))[:, None].float()
    theirs = compute_hausdorff_distance(pred, target, include_background=True, percentile=95).numpy()[:, 0]
    ours = np.array([hd95(p, t) for p, t in pairs])
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, float(theirs.max()))
    assert (theirs > 0).sum() > 100  # the pairs differ: the agreement is not 0 == 0


def test_hd95_empty_masks_differ_from_monai_as_documented():
    """MONAI gives NaN whenever a mask is empty; msaug gives 0 for two empty masks (a correct "nothing here")."""
    import warnings

    from monai.metrics import compute_hausdorff_distance

    empty, full = np.zeros((16, 16), bool), square(16, 4, 4, 6).astype(bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = compute_hausdorff_distance(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), include_background=True, percentile=95)
        one = compute_hausdorff_distance(torch.zeros(1, 1, 16, 16), torch.as_tensor(full)[None, None].float(), include_background=True, percentile=95)
    assert math.isnan(float(both)) and hd95(empty, empty) == 0.0
    assert math.isnan(float(one)) and math.isnan(hd95(empty, full)) and math.isnan(hd95(full, empty))


def test_the_documented_hd95_example_prints_what_it_says(capsys):
    from tests.test_python_api import doc_examples

    example = doc_examples("Interoperability: HD95 and MONAI")[0]
    exec(example, {})
    printed = capsys.readouterr().out.split()
    assert printed == ["3.0", "3.0"] and "# 3.0 3.0" in example
