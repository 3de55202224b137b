"""The training protocols of the paper, each given exactly the same budget of steps.

* ``real``: the real training split only (the baseline).
* ``synth``: synthetic pairs only (can generated data replace real data?).
* ``synth_finetune``: half the steps on synthetic pairs, half fine-tuning on real ones.
* ``mix``: every batch holds a fixed share of synthetic pairs (``mix_ratio``).

All protocols start from the same seed (same initial weights and batch stream) and keep
the state with the best Dice on the same real validation pairs.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from msaug.errors import ConfigError
from msaug.segment.config import NEEDS_SYNTHETIC, PROTOCOLS
from msaug.segment.data import SegmentationTensors
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.train import TrainResult, TrainSettings, train_segmenter

__all__ = ["NEEDS_SYNTHETIC", "PROTOCOLS", "run_protocol", "validation_split"]


def validation_split(n: int, share: float = 0.15, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) positions; no validation with fewer than 3 cases."""
    if n < 3:
        return list(range(n)), []
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * share))
    return sorted(order[n_val:]), sorted(order[:n_val])


def run_protocol(
    protocol: str,
    info: SegmenterInfo,
    real: SegmentationTensors,
    val: SegmentationTensors | None,
    synthetic: SegmentationTensors | None,
    settings: TrainSettings,
    device: torch.device | str = "cpu",
    mix_ratio: float = 0.5,
    weights: str | None = None,
) -> tuple[Segmenter, TrainResult]:
    """Train a fresh segmenter under ``protocol``; returns it (best state loaded) and its training summary."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if protocol in NEEDS_SYNTHETIC and (synthetic is None or len(synthetic) == 0):
        raise ConfigError(f"protocol {protocol!r} needs synthetic pairs, but none were given (or QC removed them all)")
    torch.manual_seed(settings.seed)  # same initial weights for every protocol
    segmenter = Segmenter(info, weights=weights)
    settings = replace(settings, description=f"{protocol:>14}")
    if protocol == "real":
        return segmenter, train_segmenter(segmenter, [(real, 1.0)], val, settings, device)
    assert synthetic is not None
    if protocol == "synth":
        return segmenter, train_segmenter(segmenter, [(synthetic, 1.0)], val, settings, device)
    if protocol == "mix":
        return segmenter, train_segmenter(segmenter, [(real, 1.0 - mix_ratio), (synthetic, mix_ratio)], val, settings, device)
    pre_steps = settings.steps // 2
    pre = train_segmenter(segmenter, [(synthetic, 1.0)], val, replace(settings, steps=pre_steps, description="  pre-train"), device)
    fine = train_segmenter(segmenter, [(real, 1.0)], val, replace(settings, steps=settings.steps - pre_steps, seed=settings.seed + 1), device)
    fine.seconds += pre.seconds
    fine.best_step += pre_steps
    fine.history = pre.history + [{**h, "step": h["step"] + pre_steps} for h in fine.history]
    return segmenter, fine
