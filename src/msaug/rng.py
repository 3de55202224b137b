"""Per-sample random streams, so that generated pair *i* depends only on (checkpoint, seed, i).

Stages draw all their randomness at generation time from a :class:`BatchRNG`: each row of
a batch has its own generator seeded from ``(seed, index, stage position)``. The same index
therefore gets the same noise whatever batch or shard it lands in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed for sample ``index`` of run ``seed`` in random stream ``stream``."""
    return int(np.random.SeedSequence([seed, index, stream]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


class BatchRNG:
    """Independent random streams for the rows of one batch."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self._torch = [torch.Generator().manual_seed(s) for s in self.seeds]
        self._numpy = [np.random.default_rng(s) for s in self.seeds]

    @classmethod
    def for_indices(cls, seed: int, indices: Sequence[int], stream: int = 0) -> BatchRNG:
        return cls([sample_seed(seed, i, stream) for i in indices])

    def __len__(self) -> int:
        return len(self.seeds)

    def normal(self, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """A ``[B, *shape]`` standard-normal tensor, row *b* drawn from stream *b*."""
        rows = [torch.randn(shape, generator=g) for g in self._torch]
        return torch.stack(rows).to(device)

    def uniform(self, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        rows = [torch.rand(shape, generator=g) for g in self._torch]
        return torch.stack(rows).to(device)

    def numpy(self, row: int) -> np.random.Generator:
        """The numpy generator of row ``row`` (for non-learned stages)."""
        return self._numpy[row]
