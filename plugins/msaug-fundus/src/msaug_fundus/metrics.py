"""Vessel plausibility of label maps, for real training maps and generated ones alike.

Pixel overlap cannot tell a plausible vessel map from speckle: a generator that scatters
the right number of vessel pixels as disconnected dots scores the same density as a real
tree. These figures look at structure instead:

* ``vessel_density``: vessel pixels / all pixels (real DRIVE maps: about 0.09);
* ``largest_tree_share``: share of vessel pixels in the largest 8-connected component
  (a real vasculature is one or a few trees rooted in the optic disc: close to 1);
* ``components``: 8-connected components per map (speckle shows up here first);
* ``width_*_px``: the distribution of vessel widths, measured on the ridge of the distance
  transform (the medial axis: every pixel whose distance to the background is a local
  maximum). The map is first doubled in resolution (each pixel becomes 2 x 2), where the
  ridge distance of a ``w`` px wide vessel is exactly ``w``: on the original grid even and
  odd widths would collapse (a 2 px vessel has the same ridge distance as a 1 px line).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from msaug import DataSpec

_EIGHT = np.ones((3, 3), dtype=bool)


def vessel_channel(labels: torch.Tensor, spec: DataSpec) -> np.ndarray:
    """``[N, H, W]`` bool vessel maps: the ``vessel`` channel, else every non-background channel."""
    arr = labels.detach().cpu().numpy() > 0.5
    if "vessel" in spec.classes:
        return arr[:, spec.classes.index("vessel")]
    return arr[:, list(spec.foreground_channels)].any(axis=1)


def widths_px(vessels: np.ndarray) -> np.ndarray:
    """Vessel widths (pixels) sampled along the medial axis of one ``[H, W]`` bool map."""
    if not vessels.any():
        return np.zeros(0)
    doubled = vessels.repeat(2, axis=0).repeat(2, axis=1)
    dist = ndimage.distance_transform_edt(doubled)
    ridge = doubled & (dist >= ndimage.maximum_filter(dist, size=3))
    return dist[ridge]


def map_structure(vessels: np.ndarray) -> dict[str, float]:
    """Density, component count and largest-tree share of one ``[H, W]`` bool map."""
    total = int(vessels.sum())
    labelled, count = ndimage.label(vessels, structure=_EIGHT)
    largest = int(np.bincount(labelled.ravel())[1:].max()) if count else 0
    return {
        "vessel_density": total / vessels.size,
        "components": float(count),
        "largest_tree_share": largest / total if total else float("nan"),
    }


def vessel_plausibility(labels: torch.Tensor, spec: DataSpec) -> dict[str, float]:
    """Label-metric hook: mean structure figures over the maps and their pooled width quantiles."""
    maps = vessel_channel(labels, spec)
    per_map = [map_structure(m) for m in maps]
    widths = np.concatenate([widths_px(m) for m in maps]) if len(maps) else np.zeros(0)
    out: dict[str, float] = {"maps": float(len(maps)), "empty_maps": float(sum(not m.any() for m in maps))}
    for key in ("vessel_density", "components", "largest_tree_share"):
        values = np.array([d[key] for d in per_map], dtype=np.float64)
        values = values[~np.isnan(values)]
        out[key] = float(values.mean()) if values.size else float("nan")
        out[f"{key}_std"] = float(values.std()) if values.size else float("nan")
    if widths.size:
        p10, p50, p90 = np.percentile(widths, [10, 50, 90])
        out.update(width_mean_px=float(widths.mean()), width_p10_px=float(p10), width_p50_px=float(p50), width_p90_px=float(p90))
        out["thin_share"] = float((widths <= 2.0).mean())
    else:
        out.update(width_mean_px=float("nan"), width_p10_px=float("nan"), width_p50_px=float("nan"), width_p90_px=float("nan"))
        out["thin_share"] = float("nan")
    return out
