"""Turning raw network outputs into label maps and images.

During training the discriminators see *soft* outputs (class probabilities, images) in
[-1, 1]; real label maps enter the same way (0/1 mapped to -1/+1). When sampling, label
outputs are hardened into valid label maps for their encoding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_probabilities(logits: torch.Tensor, encoding: str) -> torch.Tensor:
    """Softmax over classes for ``index`` encoding, independent sigmoids for ``multilabel``."""
    if encoding == "index":
        return torch.softmax(logits.float(), dim=1)
    return torch.sigmoid(logits.float())


def harden_logits(logits: torch.Tensor, encoding: str) -> torch.Tensor:
    """Hard 0/1 label map from logits: one-hot argmax (``index``) or ``logit > 0`` (``multilabel``)."""
    if encoding == "index":
        return F.one_hot(logits.argmax(dim=1), logits.shape[1]).movedim(-1, 1).to(torch.float32)
    return (logits > 0).to(torch.float32)


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (what the discriminators see)."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) * 0.5).clamp(0, 1)
