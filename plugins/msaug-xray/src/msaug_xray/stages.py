"""The chest X-ray stages: msaug's GAN families configured with chest anatomy.

Nothing here trains anything by itself: networks, losses and the training loop come from
:mod:`msaug.train.stages`. What the domain adds is

* defaults sized for the multi-stage chain (anatomy at 64 px, upscaled to ``data.size``);
* anatomical post-processing of every generated label map (one region per structure,
  holes filled, lateral structures kept on their side: :func:`anatomical_postprocess`);
* radiograph output on the 12-bit grid of real detectors (PNG files are written at 16 bit
  by the runner, ``generate.bit_depth: 16``).

The joint baseline gets the same post-processing, so that ``msaug compare single multi``
compares the generation schemes and not the clean-up.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from msaug import StageParams
from msaug.train.stages import (
    JointParams,
    JointStage,
    LabelGeneratorParams,
    LabelGeneratorStage,
    LabelUpscalerParams,
    LabelUpscalerStage,
    TranslatorParams,
    TranslatorStage,
)
from msaug_xray.phantom import BIT_DEPTH
from msaug_xray.plausibility import anatomical_postprocess

_LEVELS = float((1 << BIT_DEPTH) - 1)


def to_detector_levels(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 12-bit grey levels of a radiograph."""
    return torch.round(image.clamp(0.0, 1.0) * _LEVELS) / _LEVELS


class AnatomyMaskParams(LabelGeneratorParams):
    size: int | None = Field(64, ge=8, le=4096, description="side of the generated anatomy maps")


class AnatomyMask(LabelGeneratorStage):
    """Noise -> chest anatomy label map at low resolution, anatomically post-processed."""

    name: ClassVar[str] = "xray.anatomy_mask"
    description: ClassVar[str] = "noise -> lungs/heart/clavicles map at low resolution (one region per structure, sides kept)"
    Params: ClassVar[type[StageParams]] = AnatomyMaskParams

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return anatomical_postprocess(label, self.data.classes)


class MaskUpscaleParams(LabelUpscalerParams):
    in_size: int | None = Field(64, ge=4, le=4096, description="side of the input anatomy maps (xray.anatomy_mask's size)")


class MaskUpscale(LabelUpscalerStage):
    """Low-resolution anatomy map -> anatomy map at data.size, anatomically post-processed."""

    name: ClassVar[str] = "xray.mask_upscale"
    description: ClassVar[str] = "anatomy map @in_size -> anatomy map @data.size (boundary detail from noise)"
    Params: ClassVar[type[StageParams]] = MaskUpscaleParams

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return anatomical_postprocess(label, self.data.classes)


class RadiographParams(TranslatorParams):
    pass


class Radiograph(TranslatorStage):
    """Anatomy map -> single-channel radiograph on the 12-bit grid (written as 16-bit PNG)."""

    name: ClassVar[str] = "xray.image"
    description: ClassVar[str] = "anatomy map -> grey radiograph, 12-bit levels (16-bit PNG output)"
    Params: ClassVar[type[StageParams]] = RadiographParams

    def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return to_detector_levels(image)


class JointRadiographParams(JointParams):
    pass


class JointRadiograph(JointStage):
    """Single-stage baseline: noise -> radiograph and anatomy map together, same post-processing."""

    name: ClassVar[str] = "xray.joint"
    description: ClassVar[str] = "single-stage baseline: noise -> (radiograph, anatomy map) at data.size"
    Params: ClassVar[type[StageParams]] = JointRadiographParams

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return anatomical_postprocess(label, self.data.classes)

    def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return to_detector_levels(image)


STAGES = (AnatomyMask, MaskUpscale, Radiograph, JointRadiograph)
