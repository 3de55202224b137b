"""Protocols compared image by image (msaug.segment.paired) and the per-image Dice it reads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from msaug.pipeline.records import Evaluation
from msaug.segment.metrics import summarize
from msaug.segment.paired import format_paired, paired_against, paired_difference


def test_a_shared_hard_image_does_not_hide_a_consistent_gain():
    """Per-image spread far above the gap, yet every image improves: the paired figures say so."""
    base = [0.95, 0.40, 0.90, 0.60, 0.85, 0.92, 0.70, 0.88]
    other = [b + 0.01 for b in base]
    d = paired_difference(base, other)
    assert d["images"] == 8 and d["better"] == 8 and d["worse"] == 0 and d["tied"] == 0
    assert d["mean_difference"] == pytest.approx(0.01) and d["median_difference"] == pytest.approx(0.01)
    assert d["ci95"] == pytest.approx([0.01, 0.01])  # every resample has the same mean
    assert d["wilcoxon_p"] == pytest.approx(2 / 2**8)  # exact two-sided signed-rank p with all 8 signs positive


def test_matches_scipy_and_a_plain_bootstrap():
    rng = np.random.default_rng(5)
    base = rng.uniform(0.6, 0.95, 40)
    other = base + rng.normal(0.0, 0.02, 40)
    d = paired_difference(base.tolist(), other.tolist(), resamples=4000, seed=1)
    diff = other - base
    assert d["mean_difference"] == pytest.approx(diff.mean())
    assert d["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    low, high = d["ci95"]
    half = 1.96 * diff.std(ddof=1) / np.sqrt(40)  # the normal interval the bootstrap approaches at n = 40
    assert low < diff.mean() < high
    assert (high - low) == pytest.approx(2 * half, rel=0.15)
    assert d == paired_difference(base.tolist(), other.tolist(), resamples=4000, seed=1)  # seeded: the same interval


def test_ties_and_missing_scores_are_counted_apart():
    d = paired_difference([0.5, 0.7, None, 0.9, float("nan")], [0.5, 0.6, 0.8, 0.95, 0.1])
    assert d["images"] == 3 and (d["better"], d["worse"], d["tied"]) == (1, 1, 1)
    same = paired_difference([0.5, 0.7], [0.5, 0.7])
    assert same["wilcoxon_p"] == 1.0 and same["mean_difference"] == 0.0 and same["tied"] == 2
    empty = paired_difference([None], [0.3])
    assert empty["images"] == 0 and empty["mean_difference"] is None and empty["wilcoxon_p"] is None
    with pytest.raises(ValueError, match="2 baseline scores, 1 others"):
        paired_difference([0.1, 0.2], [0.3])


def test_summary_keeps_each_images_foreground_dice_in_order():
    rows = []
    for lung, heart in ((0.5, 0.7), (0.9, 0.1), (0.2, 0.2)):
        row = {m: np.array([1.0, 1.0, 1.0]) for m in ("iou", "accuracy", "sensitivity", "specificity", "auc", "hd95")}
        row["dice"] = np.array([1.0, lung, heart])
        rows.append(row)
    s = summarize(rows, ("background", "lung", "heart"), "index")
    assert s["per_image_dice"] == pytest.approx([0.6, 0.5, 0.2])


def test_paired_against_real_skips_results_without_per_image_scores_and_renders_a_table():
    protocols = {
        "real": {"metrics": {"per_image_dice": [0.8, 0.9, 0.7]}},
        "mix": {"metrics": {"per_image_dice": [0.85, 0.9, 0.6]}},
        "synth": {"metrics": {"mean": {}}},  # an older result: no per-image scores
    }
    paired = paired_against(protocols)
    assert list(paired) == ["mix"]
    assert paired["mix"]["mean_difference"] == pytest.approx(-0.05 / 3)
    assert (paired["mix"]["better"], paired["mix"]["worse"], paired["mix"]["tied"]) == (1, 1, 1)
    assert paired_against({"mix": protocols["mix"]}) == {}  # no real: nothing to pair with
    table = format_paired(paired)
    assert "**Paired against `real`**" in table
    assert "| mix | -0.0167 | [" in table and "| 1 / 1 / 1 |" in table
    assert format_paired({}) == ""
    # the typed record reads what the evaluation writes
    record = Evaluation.model_validate({"protocols": {k: v for k, v in protocols.items() if k != "synth"}, "paired": paired})
    assert record.per_image_dice("mix") == [0.85, 0.9, 0.6] and record.paired["mix"].better == 1
    assert record.per_image_dice("synth") is None
