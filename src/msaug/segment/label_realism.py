"""Label realism: do generated label maps look like real ones, and do they cover them?

* Nearest-neighbour IoU in both directions. *Precision*: every generated map should
  resemble some real map (mean over generated maps of the best IoU with a real one).
  *Coverage*: every real map should be resembled by some generated one (mean over real
  maps of the best IoU with a generated one); a generator that repeats one good map has
  high precision and low coverage.
* Shape statistics per class (area share, connected components, centroid) for real and
  generated maps, with the 1-D Wasserstein distance between the two distributions.
* Diversity: mean IoU between distinct maps of the same set, generated and real (a
  collapsed generator scores near 1).
* Whatever label metrics domain plugins registered for the dataset's domain.

Maps are compared at 64 px, shrunk by the data's label policy (``max`` for thin
structures), so 1-px vessels are not erased before they are compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import wasserstein_distance

from msaug.sample import DataSpec
from msaug.segment.metrics import foreground_classes
from msaug.segment.similarity import label_iou_matrix

SHAPE_STATISTICS = ("area", "components", "centroid_y", "centroid_x")


def nearest_neighbour_iou(generated: torch.Tensor, real: torch.Tensor, spec: DataSpec, size: int = 64) -> dict[str, float]:
    """Precision and coverage by nearest-neighbour mean foreground IoU (see module docstring)."""
    fg = foreground_classes(spec.classes, spec.encoding)
    iou = label_iou_matrix(generated, real, fg, spec.encoding, size, spec.label_downsample)
    best_for_generated, best_for_real = iou.max(dim=1).values, iou.max(dim=0).values
    return {
        "precision": float(best_for_generated.mean()),
        "coverage": float(best_for_real.mean()),
        "precision_min": float(best_for_generated.min()),
        "coverage_min": float(best_for_real.min()),
    }


def label_diversity(labels: torch.Tensor, spec: DataSpec, size: int = 64, max_maps: int = 256) -> float | None:
    """Mean foreground IoU between distinct maps of one set (at most the first ``max_maps``).

    Lower is more varied. A generator that collapses to one map scores near 1, however
    realistic that map is, which nearest-neighbour precision cannot show. ``None`` for
    fewer than two maps.
    """
    labels = labels[:max_maps]
    n = labels.shape[0]
    if n < 2:
        return None
    fg = foreground_classes(spec.classes, spec.encoding)
    iou = label_iou_matrix(labels, labels, fg, spec.encoding, size, spec.label_downsample)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    return float(iou[off_diagonal].mean())


def shape_statistics(labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per map and class: area share, connected components, centroid (fractions of the side).

    Returns ``{statistic: [N, K] array}``; centroids of empty channels are NaN.
    """
    maps = labels.detach().cpu().numpy() > 0.5
    n, k, h, w = maps.shape
    out = {name: np.full((n, k), np.nan) for name in SHAPE_STATISTICS}
    ys, xs = np.mgrid[0:h, 0:w]
    for i in range(n):
        for c in range(k):
            m = maps[i, c]
            area = m.sum()
            out["area"][i, c] = area / (h * w)
            out["components"][i, c] = ndimage.label(m)[1]
            if area:
                out["centroid_y"][i, c] = ys[m].mean() / h
                out["centroid_x"][i, c] = xs[m].mean() / w
    return out


def _describe(values: np.ndarray) -> dict[str, float | None]:
    v = values[~np.isnan(values)]
    return {"mean": float(v.mean()), "std": float(v.std())} if v.size else {"mean": None, "std": None}


def compare_shapes(generated: torch.Tensor, real: torch.Tensor, spec: DataSpec) -> dict[str, Any]:
    """Shape statistic distributions per foreground class, real vs generated."""
    g, r = shape_statistics(generated), shape_statistics(real)
    out: dict[str, Any] = {}
    for c in foreground_classes(spec.classes, spec.encoding):
        per_class = {}
        for name in SHAPE_STATISTICS:
            gv, rv = g[name][:, c], r[name][:, c]
            gv_f, rv_f = gv[~np.isnan(gv)], rv[~np.isnan(rv)]
            distance = float(wasserstein_distance(gv_f, rv_f)) if gv_f.size and rv_f.size else None
            per_class[name] = {"real": _describe(rv), "synthetic": _describe(gv), "wasserstein": distance}
        out[spec.classes[c]] = per_class
    return out


def domain_label_metrics(generated: torch.Tensor, real: torch.Tensor, spec: DataSpec, registries: Any = None) -> dict[str, Any]:
    """Label metrics registered by plugins for ``spec.domain``, on real and on generated maps.

    A metric that raises is reported with its error instead of stopping the evaluation:
    it is a plugin's bug, and the remaining figures are still worth having.
    """
    from msaug.plugins import get_registries

    registries = registries or get_registries()
    out: dict[str, Any] = {}
    for name, fn in registries.label_metrics.for_domain(spec.domain):
        try:
            out[name] = {"real": fn(real, spec), "synthetic": fn(generated, spec)}
        except Exception as exc:  # noqa: BLE001 - a faulty plugin metric must not cost the whole report
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def label_realism(generated: torch.Tensor, real: torch.Tensor, spec: DataSpec, size: int = 64) -> dict[str, Any]:
    """All label realism figures for ``[N,K,H,W]`` generated and ``[M,K,H,W]`` real maps."""
    return {
        "nearest_neighbour_iou": nearest_neighbour_iou(generated, real, spec, size),
        "diversity": {"real": label_diversity(real, spec, size), "synthetic": label_diversity(generated, spec, size)},
        "shapes": compare_shapes(generated, real, spec),
        "domain_metrics": domain_label_metrics(generated, real, spec),
    }
