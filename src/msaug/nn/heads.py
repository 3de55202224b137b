"""Turning raw network outputs into label maps and images.

During training the discriminators see *soft* outputs (class probabilities, images) in
[-1, 1]; real label maps enter the same way (0/1 mapped to -1/+1). When sampling, label
outputs are hardened into valid label maps for their encoding.
"""

from __future__ import annotations

import torch

from msaug.label_encoding import harden_logits, probabilities

__all__ = ["harden_logits", "label_probabilities", "to_signed", "to_unit"]


# softmax / sigmoids and hardening are the label encoding's rules (msaug.label_encoding), shared with
# the segmenters; re-exported here for the engine's callers
label_probabilities = probabilities


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (what the discriminators see)."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) * 0.5).clamp(0, 1)
