"""Procedural PA chest radiographs with SCR-style labels: the data the main job runs on.

Each case draws a patient (size, build, inspiration depth, rotation, heart size, left/right
asymmetry) from a seeded generator and renders it *at the requested size directly* in
normalised coordinates, so a 256 px case takes a few milliseconds.

Geometry (``x`` across, ``y`` down, both in [-1, 1] before the patient's pose is applied;
negative ``x`` is the image's left = the patient's right):

* two lungs bounded by a mediastinal (medial) border, a convex lateral wall that meets a
  dome-shaped hemidiaphragm in a sharp costophrenic angle, and a rounded apex;
* the heart, an ellipse tilted towards the patient's left, sitting on the left dome and
  overlapping the medial left lung;
* both clavicles, gently S-curved bands from the sternal notch out to the shoulders,
  crossing the lung apices;
* posterior ribs, the spine with vertebral bodies, the mediastinum, the abdomen below the
  diaphragm and a soft-tissue envelope with neck and shoulders.

Intensities follow the physics loosely but honestly: each pixel's brightness is the
attenuation line integral (sum of tissue thicknesses times attenuation coefficients) seen
through an exposure with Poisson-like quantum noise, detector blur and 12-bit
quantisation; bone and dense tissue are bright, aerated lung is dark.

Labels are the five SCR structures as a ``multilabel`` map (see :mod:`msaug_xray.anatomy`);
the overlaps (clavicles over lungs, heart over the medial left lung) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from msaug import ConfigError, DataConfig, DataSpec, Sample
from msaug_xray.anatomy import ANATOMY_CLASSES, xray_spec
from msaug_xray.plausibility import largest_region

DEFAULT_COUNT = 200
BIT_DEPTH = 12


@dataclass(frozen=True)
class Patient:
    """The anatomical parameters of one phantom case (all in normalised units)."""

    scale: float  # overall patient size in the field of view
    build: float  # chest width relative to height
    angle: float  # in-plane rotation, radians
    shift_x: float
    shift_y: float
    inspiration: float  # 0 shallow .. 1 deep (lower diaphragm, longer lungs)
    right_dome_lift: float  # the right hemidiaphragm usually sits higher than the left
    lung_width_right: float
    lung_width_left: float
    apex_y: float
    heart_width: float  # transverse cardiac diameter (half-width units)
    heart_height: float
    heart_tilt: float
    heart_shift: float
    clavicle_y_right: float
    clavicle_y_left: float
    clavicle_slope: float
    rib_phase: float
    exposure: float  # beam hardness / display gain
    photons: float  # quanta per pixel: lower means noisier
    window: float


def draw_patient(rng: np.random.Generator) -> Patient:
    """Draw one patient; the spreads are chosen so that every case stays anatomically valid."""
    u = rng.uniform
    return Patient(
        scale=u(0.88, 1.04),
        build=u(0.9, 1.08),
        angle=float(np.deg2rad(np.clip(rng.normal(0.0, 2.5), -6, 6))),
        shift_x=u(-0.04, 0.04),
        shift_y=u(-0.04, 0.04),
        inspiration=u(0.0, 1.0),
        right_dome_lift=u(0.0, 0.08),
        lung_width_right=u(0.93, 1.06),
        lung_width_left=u(0.9, 1.04),
        apex_y=u(-0.66, -0.58),
        heart_width=u(0.29, 0.37),
        heart_height=u(0.17, 0.22),
        heart_tilt=float(np.deg2rad(u(20, 40))),
        heart_shift=u(-0.02, 0.04),
        clavicle_y_right=u(-0.58, -0.5),
        clavicle_y_left=u(-0.58, -0.5),
        clavicle_slope=u(0.15, 0.35),
        rib_phase=u(-0.03, 0.03),
        exposure=u(0.85, 1.2),
        photons=u(600.0, 4000.0),
        window=u(0.9, 1.1),
    )


def _grid(size: int, p: Patient) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical coordinates of each pixel centre, after the patient's pose (rotation, shift, size)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(c, c)  # u across (columns), v down (rows)
    u = u - p.shift_x
    v = v - p.shift_y
    cos, sin = np.cos(p.angle), np.sin(p.angle)
    x = (cos * u + sin * v) / (p.scale * p.build)
    y = (-sin * u + cos * v) / p.scale
    return x.astype(np.float32), y.astype(np.float32)


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """0 outside, rising smoothly to 1 at ``width`` inside: a thickness profile from an inside-distance."""
    return np.sqrt(np.clip(d / width, 0.0, 1.0))


@dataclass
class _Side:
    mask: np.ndarray  # bool lung field
    depth: np.ndarray  # air thickness profile in [0, 1]
    dome: np.ndarray  # the diaphragm's y at each x (for the abdomen)


def _lung(x: np.ndarray, y: np.ndarray, p: Patient, side: int) -> _Side:
    """One lung field; ``side`` -1 is the patient's right (image left), +1 the patient's left."""
    a = side * x  # distance from the midline towards this lung's side
    width = p.lung_width_right if side < 0 else p.lung_width_left
    lateral_max = 0.74 * width
    dome_top = _dome_top(p, side)
    dome_center = 0.36 * width
    cp_depth = 0.16 + 0.04 * p.inspiration  # how far the costophrenic angle dips below the dome
    dome = dome_top + cp_depth * ((a - dome_center) / (lateral_max - dome_center)) ** 2
    base = dome_top + cp_depth
    t = np.clip((y - p.apex_y) / (base - p.apex_y), 0.0, 1.0)
    apex_a = 0.27 * width
    lateral = apex_a + (lateral_max - apex_a) * np.sqrt(t)
    # medial border: narrow superior mediastinum, widening towards the base (cardiac border)
    medial_base = 0.12 if side < 0 else 0.26
    medial = apex_a - (apex_a - 0.07) * np.sqrt(np.clip(t * 2.5, 0, 1)) + (medial_base - 0.07) * t**2
    inside = (y > p.apex_y) & (a > medial) & (a < lateral) & (y < dome)
    span = np.maximum(lateral - medial, 1e-3)
    d = np.minimum.reduce([(a - medial) / span, (lateral - a) / span, (dome - y) * 2.0, (y - p.apex_y) * 1.5])
    return _Side(mask=inside, depth=_ramp(d, 0.2) * inside, dome=dome)


def _dome_top(p: Patient, side: int) -> float:
    """Height of a hemidiaphragm's dome: lower on deep inspiration, the right one usually higher."""
    return 0.30 + 0.2 * p.inspiration - (p.right_dome_lift if side < 0 else 0.0)


def _heart(x: np.ndarray, y: np.ndarray, p: Patient) -> tuple[np.ndarray, np.ndarray]:
    """The cardiac silhouette (an ellipse tilted to the patient's left) resting on the left dome."""
    cos, sin = np.cos(p.heart_tilt), np.sin(p.heart_tilt)
    half_height = float(np.hypot(p.heart_width * sin, p.heart_height * cos))
    cx = p.heart_shift + 0.4 * p.heart_width
    cy = _dome_top(p, +1) - 0.75 * half_height
    dx, dy = x - cx, y - cy
    r2 = ((cos * dx + sin * dy) / p.heart_width) ** 2 + ((-sin * dx + cos * dy) / p.heart_height) ** 2
    mask = r2 < 1.0
    return mask, np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))


def _clavicle(x: np.ndarray, y: np.ndarray, p: Patient, side: int) -> np.ndarray:
    """A clavicle: a gently S-shaped band from the sternal notch to the acromion, with rounded ends."""
    a = side * x
    a0, a1 = 0.07, 0.6
    y0 = p.clavicle_y_right if side < 0 else p.clavicle_y_left
    s = np.clip(a, a0, a1) - a0
    centre = y0 - p.clavicle_slope * s + 0.45 * s**2 - 0.5 * s**3
    half = 0.034 + 0.014 * (s / (a1 - a0))  # 1.5-2.5 cm of bone on a 35-43 cm film
    dist_y = np.abs(y - centre)
    outside = np.maximum(a0 - a, 0.0) + np.maximum(a - a1, 0.0)
    return (dist_y**2 + outside**2) < half**2


def _ribs(x: np.ndarray, y: np.ndarray, p: Patient, chest: np.ndarray) -> np.ndarray:
    """Posterior ribs as bone thickness: arcs leaving the spine and curving down laterally."""
    a = np.abs(x)
    s = np.clip(a - 0.05, 0.0, None)
    out = np.zeros_like(x)
    for i in range(11):
        yi = p.apex_y - 0.06 + p.rib_phase + i * 0.1
        centre = yi - 0.12 * s + 0.55 * s**2
        half = 0.02 + 0.006 * (i / 10)
        band = np.clip(1.0 - np.abs(y - centre) / half, 0.0, 1.0)
        out = np.maximum(out, np.sqrt(band))
    return out * chest * (a > 0.05)


def _envelope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Soft-tissue thickness of the trunk: an elliptical cross-section, neck above the shoulders."""
    shoulder = 1.0 / (1.0 + np.exp(-(y + 0.74) / 0.025))  # 0 in the neck, 1 below the shoulders
    chest_wall = 0.93 - 0.05 * (y - 0.1) ** 2  # the rib cage bulges at mid-height
    half_width = 0.24 + (chest_wall - 0.24) * shoulder
    r = np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0)
    return r**0.35 * (0.55 + 0.45 * shoulder)


def render_case(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One phantom case: ``image`` float32 [1, S, S] in [0, 1] (12-bit levels), ``label`` float32 [5, S, S]."""
    p = draw_patient(rng)
    x, y = _grid(size, p)
    right, left = _lung(x, y, p, -1), _lung(x, y, p, +1)
    heart, heart_depth = _heart(x, y, p)
    clav_r, clav_l = _clavicle(x, y, p, -1), _clavicle(x, y, p, +1)

    body = _envelope(x, y)
    chest = (body > 0) & (y > -0.75)
    spine_band = np.clip(1.0 - np.abs(x) / 0.06, 0.0, 1.0) ** 0.5
    vertebrae = 0.75 + 0.25 * (np.cos((y - p.rib_phase) * np.pi / 0.05) > -0.6)
    bone = 0.16 * spine_band * vertebrae * (body > 0) + 0.09 * _ribs(x, y, p, chest)
    bone += 0.16 * (clav_r | clav_l)

    # lung air, with a blobby vascular texture; the heart displaces air in front of the left lung
    texture_rng = np.random.default_rng(rng.integers(1 << 62))
    coarse = texture_rng.standard_normal((max(size // 8, 4),) * 2).astype(np.float32)
    texture = ndimage.zoom(coarse, size / coarse.shape[0], order=1)[:size, :size]
    air = 0.8 * (right.depth + left.depth) * (1.0 + 0.05 * texture)
    air = np.maximum(air - 0.5 * heart_depth * heart, 0.15 * air)

    attenuation = 1.0 * np.maximum(body - air, 0.0) + 2.2 * bone
    attenuation = ndimage.gaussian_filter(attenuation, sigma=max(size / 320.0, 0.4))

    # exposure: transmitted quanta with Poisson-like noise, shown as log attenuation
    k = 2.0 * p.exposure
    transmitted = np.exp(-k * attenuation)
    noise = rng.standard_normal(transmitted.shape).astype(np.float32)
    counts = np.maximum(transmitted * p.photons + np.sqrt(transmitted * p.photons + 1.0) * noise, 0.5)
    shown = np.log(p.photons / counts) / (k * 1.25 * p.window)
    levels = (1 << BIT_DEPTH) - 1
    image = np.round(np.clip(shown, 0.0, 1.0) * levels) / levels

    # each structure is one region in continuous space; point sampling a sharp costophrenic
    # angle at low resolution can leave an isolated tip pixel, which is not anatomy
    structures = [left.mask, right.mask, heart, clav_l, clav_r]
    label = np.stack([largest_region(m, fill_holes=False) for m in structures]).astype(np.float32)
    return image[None].astype(np.float32), label


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of case ``index`` of phantom seed ``seed``: cases are independent of each other."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), 0x58524159]))


class PhantomDataset:
    """``xray.phantom``: ``count`` procedural chest radiographs, rendered on first access and kept."""

    def __init__(self, size: int, count: int = DEFAULT_COUNT, seed: int = 0):
        self.spec: DataSpec = xray_spec(size, ANATOMY_CLASSES)
        self.count = count
        self.seed = seed
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not -self.count <= index < self.count:
            raise IndexError(f"phantom case {index} out of range (count {self.count})")
        index %= self.count
        if index not in self._cache:
            image, label = render_case(self.spec.size, case_rng(self.seed, index))
            self._cache[index] = Sample(
                id=f"phantom-{self.seed}-{index:05d}", image=image, label=label, meta={"seed": self.seed, "case": index}
            )
        return self._cache[index]


def phantom_dataset(config: DataConfig) -> PhantomDataset:
    """Dataset factory for ``xray.phantom`` (no root; ``count`` cases, default 200; ``seed``)."""
    if config.options:
        raise ConfigError(f"data.options: xray.phantom takes no options, got {sorted(config.options)}")
    if config.root is not None:
        raise ConfigError(f"data.root: xray.phantom is generated, it reads no folder (got {config.root})")
    return PhantomDataset(config.size, config.count or DEFAULT_COUNT, config.seed)
