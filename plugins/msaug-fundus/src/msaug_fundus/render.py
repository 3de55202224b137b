"""Procedural colour fundus photographs: anatomy from :mod:`msaug_fundus.vessels`, then optics.

One case is a pure function of its seed: :func:`render_case` draws the anatomy (disc, cup,
macula, vessel trees, optional lesions) and the acquisition (colour, illumination,
vignetting, blur, noise) from one ``numpy`` generator, then renders them at any size, so
a case looks the same at 64 px and at 1024 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from msaug_fundus.fov import FOV_RADIUS_FRACTION, disc_fov
from msaug_fundus.vessels import THIN_RADIUS, Anatomy, grow_anatomy, rasterise


@dataclass
class Case:
    """One rendered phantom: image ``[3, H, W]`` in [0, 1], vessel map and FOV ``[H, W]`` bool."""

    image: np.ndarray
    vessels: np.ndarray
    fov: np.ndarray
    meta: dict


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells`` x ``cells`` grid smoothed and upsampled."""
    grid = ndimage.gaussian_filter(rng.normal(size=(channels, cells, cells)), sigma=(0, 1.2, 1.2), mode="wrap")
    grid /= np.abs(grid).max() + 1e-9
    return np.stack([ndimage.zoom(g, size / cells, order=1, mode="nearest", grid_mode=True) for g in grid])[:, :size, :size]


def _blobs(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, centre: tuple[float, float], spread: float, count: int, radius: tuple[float, float]
) -> np.ndarray:
    """Sum of ``count`` soft round spots near ``centre`` (FOV units), clipped to [0, 1]."""
    out = np.zeros_like(xx)
    for _ in range(count):
        cx, cy = rng.normal(centre, spread, size=2)
        r = rng.uniform(*radius)
        out += np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (r * r)) ** 2)
    return np.clip(out, 0.0, 1.0)


def render_case(seed_key: tuple[int, int], size: int, lesion_probability: float = 0.3) -> Case:
    """Render phantom case ``seed_key = (dataset seed, case index)`` at ``size`` px."""
    rng = np.random.default_rng(list(seed_key))
    anatomy = grow_anatomy(rng)
    acq = np.random.default_rng([*seed_key, 1])  # acquisition draws, independent of the anatomy
    fov_px = FOV_RADIUS_FRACTION * size
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    xx, yy = (xx - centre) / fov_px, (yy - centre) / fov_px
    rr2 = xx * xx + yy * yy

    # Retinal background: orange-red, brighter towards the disc, darker at the periphery.
    base = np.array([0.80, 0.38, 0.17]) * acq.uniform(0.85, 1.1, size=3)
    image = np.ones((3, size, size)) * base[:, None, None]
    texture = _smooth_noise(acq, size, 24, channels=1)[0]
    image *= 1.0 + acq.uniform(0.04, 0.09) * texture
    tilt = acq.normal(0, 0.08, size=2)
    image *= 1.0 + tilt[0] * xx + tilt[1] * yy
    dx, dy = xx - anatomy.disc[0], yy - anatomy.disc[1]
    image *= 1.0 + 0.12 * np.exp(-(dx * dx + dy * dy) / 0.35**2)
    image *= 1.0 - acq.uniform(0.25, 0.5) * rr2**1.5

    # Macula and fovea: darker, with a small bright foveal reflex.
    fx, fy = xx - anatomy.fovea[0], yy - anatomy.fovea[1]
    fd2 = fx * fx + fy * fy
    image *= 1.0 - acq.uniform(0.2, 0.35) * np.exp(-fd2 / 0.2**2)
    image *= 1.0 - 0.2 * np.exp(-fd2 / 0.05**2)
    image += 0.08 * np.exp(-fd2 / 0.012**2)

    # Vessels: veins darker and wider, arteries lighter with a central light reflex; thin
    # capillary-scale vessels lose contrast.
    vessel_label = np.zeros((size, size), dtype=bool)
    for kind, depth, reflex in (("vein", (0.55, 0.78, 0.75), 0.0), ("artery", (0.38, 0.62, 0.6), 0.25)):
        ras = rasterise(anatomy.vessels, size, fov_px, (kind,))
        strength = ras.coverage * np.clip(ras.radius / THIN_RADIUS, 0.3, 1.0) ** 0.8
        profile = strength * (1.0 - 0.35 * np.clip(ras.centre, 0, 1) ** 2)
        image *= 1.0 - np.asarray(depth)[:, None, None] * profile
        wide = np.clip((ras.radius * fov_px - 1.5) / 2.0, 0.0, 1.0)
        image += reflex * wide * strength * np.exp(-(np.clip(ras.centre, 0, 9) / 0.3) ** 2) * base[:, None, None]
        vessel_label |= ras.label

    # Optic disc with cup, drawn over the vessel roots as in photographs (the disc rim is pale).
    aspect = acq.uniform(0.9, 1.1)
    dd = np.sqrt((dx * aspect) ** 2 + (dy / aspect) ** 2)
    disc = 1.0 / (1.0 + np.exp((dd - anatomy.disc_radius) / 0.015))
    cup = 1.0 / (1.0 + np.exp((dd - anatomy.disc_radius * acq.uniform(0.3, 0.6)) / 0.015))
    disc_colour = np.array([0.98, 0.78, 0.52])[:, None, None]
    cup_colour = np.array([1.0, 0.93, 0.78])[:, None, None]
    pale = 0.8 * disc * (1.0 - 0.5 * vessel_label)
    image = image * (1 - pale) + disc_colour * pale
    image = image * (1 - 0.7 * cup) + cup_colour * 0.7 * cup

    # Optional lesions: hard exudates near the macula, dot/blot haemorrhages anywhere.
    lesions = {"exudates": 0, "haemorrhages": 0}
    if acq.random() < lesion_probability:
        lesions = {"exudates": int(acq.integers(0, 14)), "haemorrhages": int(acq.integers(0, 8))}
        ex = _blobs(acq, xx, yy, anatomy.fovea, 0.2, lesions["exudates"], (0.006, 0.02))
        image = image * (1 - ex) + np.array([1.0, 0.9, 0.45])[:, None, None] * ex
        hm = _blobs(acq, xx, yy, (0.0, 0.0), 0.45, lesions["haemorrhages"], (0.01, 0.04))
        image *= 1.0 - 0.6 * hm * np.array([0.4, 0.85, 0.85])[:, None, None]

    # Acquisition: illumination, gamma, blur, sensor noise, black outside the field of view.
    illum = 1.0 + acq.uniform(0.05, 0.15) * _smooth_noise(acq, size, 6)[0]
    image = np.clip(image * illum * acq.uniform(0.8, 1.12), 0.0, 1.0) ** acq.uniform(0.85, 1.2)
    sigma = acq.uniform(0.3, 1.0) * size / 512.0
    if sigma > 0.15:
        image = ndimage.gaussian_filter(image, sigma=(0, sigma, sigma))
    image += acq.normal(0, acq.uniform(0.004, 0.015), size=image.shape)
    fov = disc_fov(size)
    fov_soft = np.clip((1.0 - np.sqrt(rr2)) * fov_px + 0.5, 0.0, 1.0)
    image = np.clip(image * fov_soft * fov, 0.0, 1.0)  # exactly black wherever the ROI says outside
    meta = {
        "eye": "left" if anatomy.temporal > 0 else "right",
        "disc": [round(v, 4) for v in anatomy.disc],
        "fovea": [round(v, 4) for v in anatomy.fovea],
        **lesions,
    }
    return Case(image.astype(np.float32), vessel_label & fov, fov, meta)


def anatomy_of(seed_key: tuple[int, int]) -> Anatomy:
    """The anatomy of a case without rendering it (for tests and figures)."""
    return grow_anatomy(np.random.default_rng(list(seed_key)))
