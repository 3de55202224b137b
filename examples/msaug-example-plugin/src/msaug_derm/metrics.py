"""``lesion_shape``: is a label map a plausible dermoscopy lesion mask?

A lesion mask from a dermoscopy photograph holds one connected lesion with no holes,
usually fully inside the image; its border is mostly convex. The rates below say how
often generated maps are like that, next to the same figures on the real maps.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from msaug import DataSpec

DOMAIN = "derm"


def solidity(mask: np.ndarray) -> float:
    """Area over convex-hull area (1: convex); 0 for fewer than three pixels."""
    points = np.argwhere(mask)
    if len(points) < 3:
        return 0.0
    corners = np.concatenate([points + offset for offset in ([0, 0], [0, 1], [1, 0], [1, 1])])
    try:
        return float(len(points) / ConvexHull(corners).volume)
    except QhullError:  # all pixels on a line
        return 1.0


def lesion_shape_metrics(labels: torch.Tensor, spec: DataSpec) -> dict[str, float]:
    """Shares of maps with exactly one lesion, with holes, touching the border; mean area share and solidity."""
    channel = spec.classes.index("lesion") if "lesion" in spec.classes else len(spec.classes) - 1
    maps = labels[:, channel].detach().cpu().numpy() > 0.5
    single = holes = touching = 0
    areas, solidities = [], []
    for mask in maps:
        _, count = ndimage.label(mask)
        single += count == 1
        holes += bool((ndimage.binary_fill_holes(mask) & ~mask).any())
        touching += bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        areas.append(mask.mean())
        if mask.any():
            solidities.append(solidity(mask))
    n = max(len(maps), 1)
    return {
        "single_lesion_rate": single / n,
        "hole_rate": holes / n,
        "border_touch_rate": touching / n,
        "mean_area_share": float(np.mean(areas)) if areas else 0.0,
        "mean_solidity": float(np.mean(solidities)) if solidities else 0.0,
    }
