"""Reusable networks for the generative engine: generators, discriminators, losses, augmentation, EMA.

Domain plugins configure the stage families in :mod:`msaug.train.stages`; they reach for
these building blocks only to build a family of their own.
"""

from __future__ import annotations

from msaug.nn.augment import diff_augment, parse_policy
from msaug.nn.discriminators import MultiScalePatchDiscriminator, PatchDiscriminator, SkipDiscriminator
from msaug.nn.ema import ema_model
from msaug.nn.generators import LabelUpscalerNet, SkipGenerator, SPADEGenerator
from msaug.nn.heads import harden_logits, label_probabilities, to_signed, to_unit
from msaug.nn.losses import discriminator_loss, feature_matching_loss, generator_loss, r1_penalty

__all__ = [
    "LabelUpscalerNet",
    "MultiScalePatchDiscriminator",
    "PatchDiscriminator",
    "SPADEGenerator",
    "SkipDiscriminator",
    "SkipGenerator",
    "diff_augment",
    "discriminator_loss",
    "ema_model",
    "feature_matching_loss",
    "generator_loss",
    "harden_logits",
    "label_probabilities",
    "parse_policy",
    "r1_penalty",
    "to_signed",
    "to_unit",
]
