"""Procedural retinal vessel trees: growth in resolution-free coordinates, then rasterisation.

Trees are grown once per case in *field-of-view units* (the FOV is the unit disc, x to the
right, y down), so the same case rendered at 64 or 1024 px has the same anatomy and only
its thinnest vessels fall below the pixel grid at low resolution, as in real photographs.

Growth follows three observations about retinal vasculature:

* vessels leave the optic disc in four arcades (superior/inferior, temporal/nasal) and the
  temporal arcades bend around the macula, which itself stays avascular (the foveal
  avascular zone);
* at each bifurcation the radii obey Murray's law ``r0**3 = r1**3 + r2**3`` and the branch
  angles follow from it (the thinner child leaves at the larger angle);
* the path is a random walk in direction (tortuosity), stronger for thin vessels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: thinnest vessel radius grown, in FOV units (about 1 px wide at 565 px, DRIVE's width)
MIN_RADIUS = 0.0022
#: radius below which a vessel is "capillary-scale": drawn with reduced contrast
THIN_RADIUS = 0.008
#: vessels thinner than this radius in pixels are too faint to be traced in the label
LABEL_MIN_RADIUS_PX = 0.3
#: growth step in FOV units
STEP = 0.008
#: stop growing a tree after this many segments (keeps 1024 px cases fast)
MAX_SEGMENTS_PER_TREE = 400


@dataclass
class Vessel:
    """One unbranched vessel segment: a polyline with a radius per point (FOV units)."""

    points: np.ndarray  # [n, 2] (x, y)
    radius: np.ndarray  # [n]
    kind: str  # "artery" or "vein"


@dataclass
class Anatomy:
    """Where the landmarks of one case are, in FOV units."""

    disc: tuple[float, float]
    disc_radius: float
    fovea: tuple[float, float]
    temporal: float  # +1 when the macula lies to the right of the disc (left eye), else -1
    vessels: list[Vessel] = field(default_factory=list)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def murray_split(r0: float, asymmetry: float) -> tuple[float, float, float, float]:
    """Child radii and branch angles of a bifurcation that obeys Murray's law.

    ``asymmetry`` is ``r2 / r1`` in (0, 1]. Returns ``(r1, r2, theta1, theta2)`` with the
    angles (radians, from the parent direction) that minimise the work of the junction.
    """
    r1 = r0 / (1.0 + asymmetry**3) ** (1.0 / 3.0)
    r2 = asymmetry * r1
    c1 = (r0**4 + r1**4 - r2**4) / (2 * r0**2 * r1**2)
    c2 = (r0**4 + r2**4 - r1**4) / (2 * r0**2 * r2**2)
    return r1, r2, math.acos(max(-1.0, min(1.0, c1))), math.acos(max(-1.0, min(1.0, c2)))


def _target_direction(x: float, y: float, anatomy: Anatomy, arcade: bool) -> float:
    """Preferred heading at (x, y): away from the disc, around the macula, out of the fovea."""
    dx, dy = x - anatomy.disc[0], y - anatomy.disc[1]
    norm = math.hypot(dx, dy) or 1.0
    tx, ty = dx / norm, dy / norm
    fx, fy = x - anatomy.fovea[0], y - anatomy.fovea[1]
    fd = math.hypot(fx, fy) or 1e-6
    if arcade:  # circle the macula at about 0.45 FOV radii, heading temporally
        w = math.exp(-(((fd - 0.45) / 0.3) ** 2))
        px, py = -fy / fd, fx / fd
        if px * anatomy.temporal < 0:
            px, py = -px, -py
        tx, ty = (1 - w) * tx + w * px, (1 - w) * ty + w * py
    if fd < 0.25:  # keep out of the foveal avascular zone
        push = (0.25 - fd) / 0.25 * 3.0
        tx, ty = tx + push * fx / fd, ty + push * fy / fd
    return math.atan2(ty, tx)


def _grow_tree(
    rng: np.random.Generator, anatomy: Anatomy, start: tuple[float, float], heading: float, radius: float, kind: str, arcade: bool
) -> list[Vessel]:
    vessels: list[Vessel] = []
    stack = [(start[0], start[1], heading, radius, 0)]
    while stack and len(vessels) < MAX_SEGMENTS_PER_TREE:
        x, y, theta, r, depth = stack.pop()
        length = rng.uniform(6.0, 20.0) * 2 * r + (0.12 if depth == 0 else 0.0)
        n = max(3, int(length / STEP))
        tortuosity = 0.6 + 1.5 * (1.0 - min(1.0, r / 0.013))
        guide = 2.5 if depth == 0 else 4.0
        pts = np.empty((n + 1, 2))
        pts[0] = x, y
        done = False
        for i in range(1, n + 1):
            target = _target_direction(x, y, anatomy, arcade)
            theta += guide * STEP * _wrap(target - theta) + rng.normal(0.0, tortuosity * math.sqrt(STEP))
            x += STEP * math.cos(theta)
            y += STEP * math.sin(theta)
            pts[i] = x, y
            if x * x + y * y > 1.03**2:
                pts = pts[: i + 1]
                done = True
                break
        taper = np.linspace(r, r * 0.97, len(pts))
        vessels.append(Vessel(pts, taper, kind))
        if done:
            continue
        r_end = float(taper[-1])
        asymmetry = rng.uniform(0.2, 1.0) if depth > 0 else rng.uniform(0.3, 0.7)
        r1, r2, a1, a2 = murray_split(r_end, asymmetry)
        side = 1.0 if rng.random() < 0.5 else -1.0
        for child_r, angle in ((r2, theta + side * a2), (r1, theta - side * a1)):
            if child_r >= MIN_RADIUS:
                stack.append((x, y, angle, child_r, depth + 1))
    return vessels


def grow_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw the landmarks of one case and grow its arterial and venous trees."""
    temporal = 1.0 if rng.random() < 0.5 else -1.0
    disc = (-temporal * rng.uniform(0.5, 0.62), rng.uniform(-0.08, 0.08))
    fovea = (temporal * rng.uniform(0.02, 0.14), disc[1] + rng.uniform(0.0, 0.08))
    anatomy = Anatomy(disc=disc, disc_radius=rng.uniform(0.13, 0.17), fovea=fovea, temporal=temporal)
    # Four arcades per tree type: temporal ones are thicker and bend around the macula.
    up, down = -math.pi / 2, math.pi / 2
    tdir = 0.0 if temporal > 0 else math.pi
    for kind, scale in (("vein", 1.0), ("artery", 0.78)):
        for vertical, is_temporal in ((up, True), (down, True), (up, False), (down, False)):
            lean = rng.uniform(0.25, 0.5) if is_temporal else rng.uniform(0.5, 0.9)
            toward = tdir if is_temporal else _wrap(tdir + math.pi)
            heading = vertical + lean * _wrap(toward - vertical)
            radius = scale * (rng.uniform(0.011, 0.014) if is_temporal else rng.uniform(0.007, 0.0095))
            offset = rng.uniform(-0.3, 0.3, size=2) * anatomy.disc_radius
            start = (disc[0] + offset[0], disc[1] + offset[1])
            anatomy.vessels += _grow_tree(rng, anatomy, start, heading, radius, kind, arcade=is_temporal)
    return anatomy


@dataclass
class VesselRaster:
    """Per-pixel vessel maps of one tree type at one resolution."""

    coverage: np.ndarray  # [H, W] share of the pixel covered by a vessel, in [0, 1]
    radius: np.ndarray  # [H, W] radius (FOV units) of the nearest vessel where covered
    centre: np.ndarray  # [H, W] distance to the vessel axis relative to its radius (0 on the axis)
    label: np.ndarray  # [H, W] bool: what an annotator would trace (at least 1 px wide)


#: radius bins (pixels) rasterised separately, so that a thin vessel passing close to a
#: thick one does not notch it (each pixel is assigned to the nearest axis of its bin), and
#: untraceable vessels cannot take pixels from traced ones
_RADIUS_BINS_PX = (0.0, LABEL_MIN_RADIUS_PX, 1.0, 2.0, 4.0, 8.0, math.inf)


def rasterise(vessels: list[Vessel], size: int, fov_radius_px: float, kinds: tuple[str, ...]) -> VesselRaster:
    """Draw the vessels of ``kinds`` as anti-aliased tubes on a ``size`` x ``size`` grid."""
    centre_px = (size - 1) / 2.0
    chunks = [v for v in vessels if v.kind in kinds]
    coverage = np.zeros((size, size))
    radius = np.zeros((size, size))
    rel = np.full((size, size), np.inf)
    label = np.zeros((size, size), dtype=bool)
    if not chunks:
        return VesselRaster(coverage, radius, rel, label)
    xs, ys, rs = [], [], []
    for v in chunks:  # resample densely: every pixel the axis crosses receives a sample
        p = v.points * fov_radius_px + centre_px
        seg = np.hypot(*np.diff(p, axis=0).T)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        t = np.arange(0.0, arc[-1] + 1e-9, 0.3)
        xs.append(np.interp(t, arc, p[:, 0]))
        ys.append(np.interp(t, arc, p[:, 1]))
        rs.append(np.interp(t, arc, v.radius))
    x, y, r_fov = np.concatenate(xs), np.concatenate(ys), np.concatenate(rs)
    r_px = r_fov * fov_radius_px
    inside = (x > -r_px - 1) & (x < size + r_px) & (y > -r_px - 1) & (y < size + r_px)
    x, y, r_fov, r_px = x[inside], y[inside], r_fov[inside], r_px[inside]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for lo, hi in zip(_RADIUS_BINS_PX[:-1], _RADIUS_BINS_PX[1:]):
        sel = (r_px >= lo) & (r_px < hi)
        if not sel.any():
            continue
        order = np.argsort(r_px[sel])  # the widest sample wins a shared pixel (written last)
        bx, by, brf, brp = x[sel][order], y[sel][order], r_fov[sel][order], r_px[sel][order]
        ix = np.clip(np.rint(bx).astype(np.int64), 0, size - 1)
        iy = np.clip(np.rint(by).astype(np.int64), 0, size - 1)
        axis_x = np.zeros((size, size))
        axis_y = np.zeros((size, size))
        axis_rf = np.zeros((size, size))
        axis_rp = np.zeros((size, size))
        seeds = np.zeros((size, size), dtype=bool)
        axis_x[iy, ix], axis_y[iy, ix], axis_rf[iy, ix], axis_rp[iy, ix] = bx, by, brf, brp
        seeds[iy, ix] = True
        _, (ny, nx) = ndimage.distance_transform_edt(~seeds, return_indices=True)
        d = np.hypot(xx - axis_x[ny, nx], yy - axis_y[ny, nx])
        rp = axis_rp[ny, nx]
        cov = np.clip(rp + 0.5 - d, 0.0, 1.0)
        better = cov > coverage
        coverage = np.where(better, cov, coverage)
        radius = np.where(better, axis_rf[ny, nx], radius)
        rel = np.where(better, d / np.maximum(rp, 0.5), rel)
        # Annotators trace every visible vessel as an unbroken line at least one pixel
        # wide (every pixel its axis crosses); vessels much thinner than a pixel are
        # invisible in the photograph and stay unlabelled.
        if lo >= LABEL_MIN_RADIUS_PX:
            label |= seeds | (d <= rp)
    return VesselRaster(coverage, radius, rel, label)
