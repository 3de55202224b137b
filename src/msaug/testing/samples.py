"""Tiny, real-like samples for stage tests: small enough for milliseconds, shaped like real data.

Each case is a smooth grey (or RGB) image of a disc crossed by a bar on a shaded
background, with its label map in either encoding:

* ``index``: classes ``background, disc, bar`` (one-hot, the bar drawn over the disc);
* ``multilabel``: classes ``disc, bar``, two independent channels that overlap where the
  bar crosses the disc, as clavicles overlap lungs in a chest X-ray.

With ``roi=True`` every case also has a circular field of view (as in fundus photographs):
the image is black and the label empty outside it. Shapes, positions and intensities vary
from case to case, so a stage that fits them has something to learn, yet nothing is read
from disk and nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from msaug.modality import Encoding, Image, Label, Modality, Noise
from msaug.sample import Dataset, DataSpec, ListDataset, Sample

INDEX_CLASSES = ("background", "disc", "bar")
MULTILABEL_CLASSES = ("disc", "bar")

#: the tiny datasets stage contracts run on when no dataset is named: between them they
#: cover both label encodings, grey and RGB images, and a region of interest
TINY_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny-index-grey": {"encoding": "index", "channels": 1, "roi": False},
    "tiny-multilabel-rgb": {"encoding": "multilabel", "channels": 3, "roi": True},
}


def tiny_spec(size: int = 32, encoding: Encoding = "index", channels: int = 1, roi: bool = False) -> DataSpec:
    """The :class:`~msaug.DataSpec` of :func:`tiny_dataset` with the same arguments."""
    classes = INDEX_CLASSES if encoding == "index" else MULTILABEL_CLASSES
    return DataSpec(classes, encoding, channels, size, domain="testing", has_roi=roi)


def _case(rng: np.random.Generator, size: int, encoding: Encoding, channels: int, roi: bool, index: int) -> Sample:
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    radius = rng.uniform(0.16, 0.26)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    angle = rng.uniform(0, np.pi)
    distance = (yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)
    along = (yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
    bar = (np.abs(distance) <= rng.uniform(0.04, 0.07)) & (np.abs(along) <= rng.uniform(0.3, 0.4))
    fov = (yy - 0.5) ** 2 + (xx - 0.5) ** 2 <= 0.48**2 if roi else np.ones((size, size), bool)
    disc, bar = disc & fov, bar & fov

    shading = 0.15 + 0.1 * yy + 0.05 * np.sin(2 * np.pi * (xx + rng.uniform()))
    image = np.empty((channels, size, size), np.float32)
    for c in range(channels):
        level = shading + rng.uniform(0.35, 0.45) * disc + rng.uniform(0.2, 0.3) * (c + 1) / channels * bar
        image[c] = np.clip(level + rng.normal(0, 0.02, (size, size)), 0, 1) * fov

    if encoding == "index":
        label = np.zeros((3, size, size), np.float32)
        label[2] = bar
        label[1] = disc & ~bar
        label[0] = 1 - label[1] - label[2]
    else:
        label = np.stack([disc, bar]).astype(np.float32)
    return Sample(f"tiny{index:03d}", image, label, fov.copy() if roi else None)


def tiny_dataset(
    size: int = 32,
    count: int = 6,
    encoding: Encoding = "index",
    channels: int = 1,
    roi: bool = False,
    seed: int = 0,
) -> ListDataset:
    """``count`` tiny cases (see the module docstring); the same arguments give the same cases."""
    if encoding not in ("index", "multilabel"):
        raise ValueError(f"encoding must be 'index' or 'multilabel', not {encoding!r}")
    rng = np.random.default_rng(seed)
    samples = [_case(rng, size, encoding, channels, roi, i) for i in range(count)]
    return ListDataset(tiny_spec(size, encoding, channels, roi), samples)


def tiny_batch(modality: Modality, dataset: Dataset, count: int | None = None, seed: int = 0) -> torch.Tensor:
    """A batch of ``modality`` from real samples: ``[N, ...]`` views, or seeded noise for :class:`Noise`."""
    n = len(dataset) if count is None else count
    if isinstance(modality, Noise):
        return torch.randn(n, modality.dim, generator=torch.Generator().manual_seed(seed))
    if not isinstance(modality, (Label, Image)):
        raise TypeError(f"tiny_batch: cannot derive {modality} from real samples")
    if n > len(dataset):
        raise ValueError(f"tiny_batch: asked for {n} samples, the dataset has {len(dataset)}")
    return torch.stack([modality.view(dataset[i]) for i in range(n)])
