"""Star-shaped lesion borders as radius functions r(theta) around a centre.

Pigmented lesions are, to a good approximation, star-shaped around their centre: every
ray from the centre crosses the border once. A border is then a periodic radius function
sampled at ``n`` equally spaced angles, which is what the phantom draws and what the
``derm.lesion_mask`` stage learns. Coordinates are fractions of the image side, so a
border means the same at every resolution.
"""

from __future__ import annotations

import numpy as np


def angles(n: int) -> np.ndarray:
    return np.arange(n) * (2 * np.pi / n)


def radial_mask(size: int, centre: tuple[float, float], radii: np.ndarray) -> np.ndarray:
    """Boolean ``[size, size]`` mask of the region within ``radii`` (fractions of the side) of ``centre``."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    dy, dx = yy - centre[0], xx - centre[1]
    theta = np.mod(np.arctan2(dy, dx), 2 * np.pi)
    n = len(radii)
    position = theta / (2 * np.pi) * n
    low = np.floor(position).astype(int) % n
    frac = position - np.floor(position)
    border = (1 - frac) * radii[low] + frac * radii[(low + 1) % n]  # periodic linear interpolation
    return np.hypot(dy, dx) <= border


def radial_profile(mask: np.ndarray, centre: tuple[float, float], n: int) -> np.ndarray:
    """Border radius (fraction of the side) along ``n`` rays from ``centre``: the last inside point of each ray."""
    size = mask.shape[0]
    steps = np.arange(1, 2 * size) / (2 * size)  # half-pixel steps out to the farthest corner
    radii = np.empty(n)
    for j, theta in enumerate(angles(n)):
        rows = ((centre[0] + steps * np.sin(theta)) * size).astype(int)
        cols = ((centre[1] + steps * np.cos(theta)) * size).astype(int)
        inside_image = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        hit = np.zeros_like(steps, dtype=bool)
        hit[inside_image] = mask[rows[inside_image], cols[inside_image]]
        radii[j] = steps[np.nonzero(hit)[0][-1]] if hit.any() else 0.5 / size
    return radii
