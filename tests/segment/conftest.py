"""Tiny, fully synthetic segmentation data for the segment tests (discs and bars on noise)."""

from __future__ import annotations

import numpy as np
import pytest

from msaug import DataSpec, ListDataset, Sample


def make_pairs(n: int, size: int = 32, encoding: str = "index", seed: int = 0, channels: int = 1, roi: bool = False) -> ListDataset:
    """``n`` pairs: a bright disc (class 1) and, for multilabel, a bar that overlaps it (class 2)."""
    rng = np.random.default_rng(seed)
    classes = ("background", "disc") if encoding == "index" else ("disc", "bar")
    spec = DataSpec(classes, encoding, channels, size, "toy", has_roi=roi)
    yy, xx = np.mgrid[0:size, 0:size]
    samples = []
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        r = rng.uniform(0.12, 0.25) * size
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r**2
        image = 0.2 + 0.05 * rng.standard_normal((size, size)) + 0.6 * disc
        if encoding == "index":
            label = np.stack([~disc, disc]).astype(np.float32)
        else:
            bar = (np.abs(yy - cy) <= size * 0.06) & (xx >= size * 0.1) & (xx <= size * 0.9)
            image = image + 0.15 * bar
            label = np.stack([disc, bar]).astype(np.float32)
        image = np.clip(image, 0, 1).astype(np.float32)[None].repeat(channels, 0)
        fov = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) <= (0.48 * size) ** 2) if roi else None
        samples.append(Sample(f"toy-{seed}-{i:03d}", image, label, fov))
    return ListDataset(spec, samples)


@pytest.fixture
def toy():
    return make_pairs
