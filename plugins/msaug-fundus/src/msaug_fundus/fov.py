"""The field of view (FOV): the circular region of a fundus photograph that holds retina.

Metrics in the fundus literature are computed inside the FOV, and generated images must be
black outside it. Three sources of a FOV, in order of preference:

* the dataset's own mask (DRIVE, HRF ship one per image);
* :func:`fov_from_image` for datasets that ship none (CHASE_DB1, STARE): the bright region
  of the photograph, as the largest connected component with its holes filled;
* :func:`disc_fov`, the centred disc of radius :data:`FOV_RADIUS_FRACTION` x size that the
  phantom uses, when nothing else is known.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

#: FOV radius as a share of the image side: the phantom's disc, and the fallback FOV
FOV_RADIUS_FRACTION = 0.46


def disc_fov(size: int, radius_fraction: float = FOV_RADIUS_FRACTION) -> np.ndarray:
    """Centred disc FOV ``[size, size]`` bool (a pixel is inside when its centre is)."""
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - centre) ** 2 + (yy - centre) ** 2 <= (radius_fraction * size) ** 2


def fov_from_image(image: np.ndarray) -> np.ndarray:
    """Estimate the FOV of a ``[C, H, W]`` photograph in [0, 1] that came without a mask.

    The retina is brighter than the black surround in the red channel (the brightest in
    fundus photographs): above 30 % of the bright retina's level (its 95th percentile), and
    at least 0.08 so JPEG noise in the surround stays out. The largest bright component,
    holes filled, is the FOV.
    """
    red = ndimage.median_filter(np.asarray(image[0], dtype=np.float64), size=3)
    bright = red > max(0.08, 0.3 * float(np.percentile(red, 95)))
    labels, count = ndimage.label(bright)
    if count == 0:
        return np.zeros(red.shape, dtype=bool)
    sizes = ndimage.sum_labels(bright, labels, index=np.arange(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)


def fov_template(rois: torch.Tensor | None, size: int) -> torch.Tensor:
    """One FOV ``[size, size]`` float {0, 1} for generated pairs, which have none of their own.

    The majority vote of the training FOVs resized to ``size`` (so a stage trained on HRF
    learns HRF's clipped disc), or :func:`disc_fov` when the training data has no FOV.
    """
    if rois is None or rois.numel() == 0:
        return torch.from_numpy(disc_fov(size)).float()
    rois = rois.float().reshape(-1, 1, *rois.shape[-2:])
    if rois.shape[-1] != size or rois.shape[-2] != size:
        rois = torch.nn.functional.interpolate(rois, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (rois.mean(dim=0)[0] >= 0.5).float()
