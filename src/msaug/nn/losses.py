"""Adversarial losses, the R1 gradient penalty and the feature-matching loss.

Discriminator outputs follow :data:`msaug.nn.discriminators.Features`: per scale, a list
of features ending with the logits; every loss averages over scales.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from msaug.nn.discriminators import Features

LossKind = Literal["nonsaturating", "hinge"]


def _logits(features: Features) -> list[torch.Tensor]:
    return [scale[-1].float() for scale in features]


def discriminator_loss(kind: LossKind, real: Features, fake: Features) -> torch.Tensor:
    """Loss that teaches the discriminator to score real high and generated low."""
    terms = []
    for r, f in zip(_logits(real), _logits(fake)):
        if kind == "hinge":
            terms.append(F.relu(1 - r).mean() + F.relu(1 + f).mean())
        else:
            terms.append(F.softplus(-r).mean() + F.softplus(f).mean())
    return torch.stack(terms).mean()


def generator_loss(kind: LossKind, fake: Features) -> torch.Tensor:
    """Non-saturating ``softplus(-D(G(z)))`` or hinge ``-D(G(z))`` generator loss."""
    terms = [(-f).mean() if kind == "hinge" else F.softplus(-f).mean() for f in _logits(fake)]
    return torch.stack(terms).mean()


def r1_penalty(real_scores: Features, real_inputs: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of the real scores w.r.t. the real inputs (Mescheder et al. 2018).

    Multiply by ``gamma / 2`` (and by the lazy-regularisation interval) before adding it.
    """
    total = sum(s.sum() for s in _logits(real_scores))
    (grad,) = torch.autograd.grad(total, real_inputs, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def feature_matching_loss(real: Features, fake: Features) -> torch.Tensor:
    """L1 between discriminator features of real and generated inputs (pix2pixHD), logits excluded."""
    terms = [
        F.l1_loss(f.float(), r.detach().float())
        for r_scale, f_scale in zip(real, fake)
        for r, f in zip(r_scale[:-1], f_scale[:-1])
    ]
    return torch.stack(terms).mean() if terms else torch.zeros(())
