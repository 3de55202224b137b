"""Exponential moving average of generator weights, on top of ``torch.optim.swa_utils.AveragedModel``.

Sampling from the averaged generator gives visibly cleaner and more stable outputs than
the raw generator, which matters most with few training images. The decay ramps up over
the first steps (``min(decay, (1 + n) / (10 + n))``) so early averages are not dominated by
the random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An averaged copy of ``model`` in eval mode without gradients; call ``update_parameters(model)`` each step."""

    @torch.no_grad()
    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(averaged, current, weight)

    ema = AveragedModel(model, multi_avg_fn=average, use_buffers=True)
    ema.eval().requires_grad_(False)
    return ema
