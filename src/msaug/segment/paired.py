"""Two protocols compared on the same test images: per-image Dice differences.

``mix`` 0.903 ± 0.071 against ``real`` 0.896 ± 0.085 says little on its own: the spread is
over test images, and most of it is shared (a hard radiograph is hard for both segmenters).
Both protocols are scored on the very same images, so the honest comparison is paired: the
difference of each image's foreground Dice, summarised by its mean, a percentile bootstrap
interval of that mean over images, the counts of images made better, worse or left equal,
and the two-sided Wilcoxon signed-rank p-value (the usual test for paired segmentation
scores; zero differences are left out, as ``scipy.stats.wilcoxon`` does by default).

This is one run's comparison: its interval covers the choice of test images, not the
training seed. Seeds are compared across runs (``msaug compare``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

RESAMPLES = 2000
TIE = 1e-9  # |difference| at or below this counts as tied (the same prediction)


def paired_difference(
    baseline: Sequence[float | None], other: Sequence[float | None], *, resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Summary of ``other - baseline`` over images scored by both (``None``/NaN in either leaves the image out)."""
    if len(baseline) != len(other):
        raise ValueError(f"paired scores need the same images: {len(baseline)} baseline scores, {len(other)} others")
    rows = [(b, o) for b, o in zip(baseline, other) if _finite(b) and _finite(o)]
    n = len(rows)
    if n == 0:
        return {"images": 0, "mean_difference": None, "median_difference": None, "ci95": None,
                "better": 0, "worse": 0, "tied": 0, "wilcoxon_p": None, "resamples": resamples}
    diff = np.array([o - b for b, o in rows], dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    nonzero = diff[np.abs(diff) > TIE]
    if nonzero.size == 0:
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy's note on small samples: the exact test is used then
            p = float(stats.wilcoxon(nonzero).pvalue)
    return {
        "images": n,
        "mean_difference": float(diff.mean()),
        "median_difference": float(np.median(diff)),
        "ci95": [float(low), float(high)],
        "better": int((diff > TIE).sum()),
        "worse": int((diff < -TIE).sum()),
        "tied": int(n - nonzero.size),
        "wilcoxon_p": p,
        "resamples": resamples,
    }


def paired_against(protocols: dict[str, Any], baseline: str = "real", seed: int = 0) -> dict[str, Any]:
    """Each protocol's paired difference from ``baseline``, where both results hold per-image Dice.

    Results written before per-image scores were kept have none and are left out.
    """
    base = protocols.get(baseline, {}).get("metrics", {}).get("per_image_dice")
    if base is None:
        return {}
    out = {}
    for name, result in protocols.items():
        scores = result.get("metrics", {}).get("per_image_dice")
        if name != baseline and scores is not None and len(scores) == len(base):
            out[name] = paired_difference(base, scores, seed=seed)
    return out


def format_paired(paired: dict[str, Any], baseline: str = "real") -> str:
    """Markdown table of :func:`paired_against`."""
    if not paired:
        return ""
    lines = [f"**Paired against `{baseline}`** (foreground Dice on the same test images; Δ = protocol − {baseline}; "
             "95 % percentile-bootstrap interval of the mean Δ over images; two-sided Wilcoxon signed-rank p):", "",
             "| protocol | mean Δ Dice | 95 % interval | median Δ | images better / worse / tied | p |",
             "|---|---|---|---|---|---|"]
    for name, row in paired.items():
        if row["mean_difference"] is None:
            lines.append(f"| {name} | n/a | n/a | n/a | 0 / 0 / 0 | n/a |")
            continue
        low, high = row["ci95"]
        lines.append(f"| {name} | {row['mean_difference']:+.4f} | [{low:+.4f}, {high:+.4f}] | {row['median_difference']:+.4f} "
                     f"| {row['better']} / {row['worse']} / {row['tied']} | {row['wilcoxon_p']:.3g} |")
    return "\n".join(lines) + "\n"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
