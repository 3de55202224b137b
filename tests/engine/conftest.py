"""Tiny synthetic label maps and images for the engine tests (16 px, a dozen cases)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msaug import DataSpec

SIZE = 16
CLASSES = ("background", "organ", "lesion")


def synthetic_index_labels(n: int, size: int = SIZE) -> torch.Tensor:
    """One-hot ``[n, 3, size, size]``: a rectangle ('organ') with a smaller square ('lesion') inside."""
    idx = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        half = size // 4 + i % 3
        c = size // 2 + (i % 2)
        idx[i, c - half : c + half, c - half : c + half // 2] = 1
        idx[i, c - 2 : c + 1, c - 2 : c + 1] = 2
    return F.one_hot(idx, len(CLASSES)).permute(0, 3, 1, 2).float()


def synthetic_multilabel(n: int, size: int = SIZE) -> torch.Tensor:
    """Two overlapping binary channels ``[n, 2, size, size]``."""
    out = torch.zeros(n, 2, size, size)
    for i in range(n):
        a = size // 4 + i % 3
        out[i, 0, 2 : 2 + 2 * a, 2 : 2 + 2 * a] = 1
        out[i, 1, a : a + size // 2, a : a + size // 3] = 1
    return out


def images_for(labels: torch.Tensor) -> torch.Tensor:
    """Grey images that are a fixed function of the label map (so a translator has something to learn)."""
    weights = torch.linspace(0.1, 0.9, labels.shape[1]).view(1, -1, 1, 1)
    return (labels * weights).sum(1, keepdim=True).clamp(0, 1)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)  # the test machine is shared: one thread avoids OpenMP spin-waits


@pytest.fixture
def spec() -> DataSpec:
    return DataSpec(CLASSES, "index", 1, SIZE)


@pytest.fixture
def labels() -> torch.Tensor:
    return synthetic_index_labels(12)


QUICK = {"width": 8, "batch_size": 8, "log_every": 5, "sample_every": 10, "checkpoint_every": 10}
