"""Procedural dermoscopy photographs of pigmented skin lesions, with their lesion masks.

Each case is drawn from its own seed ``(seed, index)`` in size-independent coordinates, so
the same case looks the same at every resolution. What a case holds, and why:

* skin of a random tone with low-frequency shading and fine texture (the background a
  segmenter must reject);
* one lesion whose border is a smooth random star-shaped curve (a few Fourier harmonics
  of the radius: round naevi to irregular, asymmetric melanoma-like outlines);
* inside the lesion, a brown colour darker towards the centre, a pigment network (a
  reticular pattern) and a few dark globules, blended into the skin over a soft edge;
* dark hairs crossing the image and, in some cases, the black corners of the dermoscope's
  circular field: the usual artefacts. Hairs are in the image only, never in the mask,
  as in the ISIC annotations.

Labels use the index encoding with classes ``background, lesion``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from msaug import ConfigError, DataConfig, DataSpec, Sample

from msaug_derm.shape import angles, radial_mask

CLASSES = ("background", "lesion")
DEFAULT_COUNT = 100
HARMONICS = 6
BORDER_ANGLES = 128


def lesion_border(rng: np.random.Generator) -> tuple[tuple[float, float], np.ndarray]:
    """A random lesion: centre and radius function (fractions of the side) at BORDER_ANGLES angles."""
    centre = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)))
    base = rng.uniform(0.14, 0.28)
    irregularity = rng.uniform(0.02, 0.12)  # small: naevus; large: irregular outline
    theta = angles(BORDER_ANGLES)
    log_radius = np.zeros_like(theta)
    for k in range(2, HARMONICS + 1):
        log_radius += rng.normal(0, irregularity * 2 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    log_radius += rng.normal(0, 0.1) * np.cos(theta + rng.uniform(0, 2 * np.pi))  # asymmetry
    return centre, base * np.exp(log_radius)


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), sigma=max(scale * size, 0.5), mode="wrap")
    return field / (field.std() + 1e-8)


def _hairs(rng: np.random.Generator, size: int) -> np.ndarray:
    """Opacity ``[size, size]`` of 0-4 thin dark curved hairs."""
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    opacity = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 5))):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.4, 0.4)
        bend = rng.uniform(-0.8, 0.8)
        along = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)
        across = -(xx - 0.5) * np.sin(angle) + (yy - 0.5) * np.cos(angle) - offset - bend * along**2
        width = max(rng.uniform(0.003, 0.006), 0.5 / size)
        opacity = np.maximum(opacity, np.exp(-0.5 * (across / width) ** 2) * rng.uniform(0.5, 0.9))
    return opacity


def render_case(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image [3, size, size] float32 in [0, 1], label [2, size, size] float32)`` of case ``index``."""
    rng = np.random.default_rng([seed, index])  # shapes and colours: scalar draws only, same at every size
    pixels = np.random.default_rng([seed, index, 1])  # per-pixel noise, whose draw count depends on size
    centre, radii = lesion_border(rng)
    lesion = radial_mask(size, centre, radii)

    skin = np.array([0.86, 0.66, 0.56]) * rng.uniform(0.8, 1.05) + rng.normal(0, 0.03, 3)
    shading = 1 + 0.06 * _smooth_noise(pixels, size, 0.25) + 0.02 * _smooth_noise(pixels, size, 0.02)
    image = skin[:, None, None] * shading[None]

    # lesion colour: brown, darker towards the centre (distance from the border, in sides)
    depth = ndimage.distance_transform_edt(lesion) / size
    darkening = np.clip(depth / (radii.mean() + 1e-6), 0, 1)
    brown = np.array([0.48, 0.30, 0.20]) * rng.uniform(0.7, 1.15)
    core = brown * rng.uniform(0.45, 0.7)
    colour = brown[:, None, None] * (1 - darkening) + core[:, None, None] * darkening
    period = rng.uniform(0.03, 0.06)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    network = 0.5 + 0.5 * np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    colour = colour * (1 - 0.25 * rng.uniform(0.3, 1) * network)[None]
    globules = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 6))):
        gy, gx = centre[0] + rng.normal(0, 0.06), centre[1] + rng.normal(0, 0.06)
        globules = np.maximum(globules, np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * rng.uniform(0.006, 0.012) ** 2)))
    colour = colour * (1 - 0.5 * globules * lesion)[None]
    blend = ndimage.gaussian_filter(lesion.astype(float), sigma=max(0.006 * size, 0.5))
    image = image * (1 - blend)[None] + colour * blend[None]

    hair_colour = np.array([0.12, 0.08, 0.06])[:, None, None]
    hairs = _hairs(rng, size)[None]
    image = image * (1 - hairs) + hair_colour * hairs
    if rng.uniform() < 0.4:  # the dermoscope's circular field leaves the corners black
        field = np.hypot(yy - 0.5, xx - 0.5) <= rng.uniform(0.6, 0.72)
        image = image * ndimage.gaussian_filter(field.astype(float), sigma=max(0.01 * size, 0.5))[None]
    image = np.clip(image + pixels.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)
    label = np.stack([~lesion, lesion]).astype(np.float32)
    return image, label


class PhantomDataset:
    """``count`` procedural dermoscopy cases at ``size`` px; case *i* depends only on (seed, i)."""

    def __init__(self, size: int, count: int, seed: int = 0):
        self.spec = DataSpec(CLASSES, "index", 3, size, domain="derm")
        self.size, self.count, self.seed = size, count, seed
        self._render = lru_cache(maxsize=4096)(self._make)

    def _make(self, index: int) -> Sample:
        image, label = render_case(self.seed, index, self.size)
        return Sample(f"derm{index:04d}", image, label, meta={"phantom_seed": self.seed})

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(f"derm.phantom has {self.count} cases, no index {index}")
        return self._render(index)


def phantom_dataset(config: DataConfig) -> PhantomDataset:
    """Dataset factory for ``derm.phantom`` (no root, no options; ``count`` cases, default 100; ``seed``)."""
    if config.root is not None:
        raise ConfigError(f"data.root: derm.phantom is generated and reads no folder (got {config.root}); remove the key")
    if config.options:
        raise ConfigError(f"data.options: derm.phantom takes no options, got {sorted(config.options)}")
    return PhantomDataset(config.size, config.count or DEFAULT_COUNT, config.seed)
