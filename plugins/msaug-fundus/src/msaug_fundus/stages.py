"""The fundus stages: msaug's GAN families configured for vessel maps and fundus photographs.

Networks, losses and the training loop all come from :mod:`msaug.train.stages`; what the
domain adds is

* defaults sized for the multi-stage chain (vessel map at 64 px, upscaled to ``data.size``);
* the field of view (FOV). Generated pairs have no FOV of their own, so every stage learns
  one while fitting: the majority vote of the training pairs' FOV masks at the stage's
  size (:func:`~msaug_fundus.fov.fov_template`; the phantom's centred disc when the data
  has none). It is saved with the weights (state key ``fov``). Generated vessel maps are
  empty outside it and generated images black outside it, as in real photographs;
* removal of vessel specks smaller than ``min_component_px`` pixels: a vessel map is a
  few connected trees, and isolated dots are the typical GAN failure on thin structures.

The joint baseline gets the same FOV and speck handling, so ``msaug compare single multi``
compares the generation schemes and not the clean-up.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from scipy import ndimage

from msaug import Budget, CheckpointError, FitContext, Label, Pairs, StageParams
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

from msaug_fundus.fov import fov_template

_EIGHT = np.ones((3, 3), dtype=bool)


def _structure_channels(label: torch.Tensor, classes: tuple[str, ...], encoding: str) -> list[int]:
    """Channels of ``[B, K, H, W]`` maps that hold structures (the label modality's foreground channels)."""
    return list(Label(classes, label.shape[-1], encoding).foreground_channels)


def _rebuild_background(label: torch.Tensor, encoding: str) -> torch.Tensor:
    if encoding == "index":
        label[:, 0] = 1.0 - label[:, 1:].amax(dim=1)
    return label


def restrict_to_fov(label: torch.Tensor, fov: torch.Tensor, classes: tuple[str, ...], encoding: str) -> torch.Tensor:
    """Hard ``[B, K, H, W]`` label maps with every structure removed outside ``fov`` ``[H, W]``."""
    out = label.clone()
    keep = _structure_channels(label, classes, encoding)
    out[:, keep] = out[:, keep] * fov.to(out.device, out.dtype)
    return _rebuild_background(out, encoding)


def remove_specks(label: torch.Tensor, min_pixels: int, classes: tuple[str, ...], encoding: str) -> torch.Tensor:
    """Drop 8-connected structure components smaller than ``min_pixels`` (row by row)."""
    if min_pixels <= 1:
        return label
    out = label.clone()
    maps = out.detach().cpu().numpy() > 0.5
    for b in range(maps.shape[0]):
        for k in _structure_channels(label, classes, encoding):
            comp, count = ndimage.label(maps[b, k], structure=_EIGHT)
            if count == 0:
                continue
            sizes = np.bincount(comp.ravel())
            small = sizes < min_pixels
            small[0] = False
            if small.any():
                out[b, k][torch.from_numpy(small[comp]).to(out.device)] = 0.0
    return _rebuild_background(out, encoding)


class FieldOfViewMixin:
    """Learns the FOV template while fitting, saves it with the weights, applies it when sampling.

    Mixed in before an engine family; ``fov_size`` is the side of the stage's outputs.
    """

    data: Any
    params: Any

    @property
    def fov_size(self) -> int:
        raise NotImplementedError

    @property
    def fov(self) -> torch.Tensor:
        current = getattr(self, "_fov", None)
        if current is None or current.shape[-1] != self.fov_size:
            current = fov_template(None, self.fov_size)
            self._fov = current
        return current

    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        self._fov = fov_template(pairs.roi, self.fov_size)
        summary = super().fit(pairs, budget, ctx)  # type: ignore[misc]
        return {**summary, "fov_share": float(self._fov.mean())}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().state_dict(), "fov": self.fov.detach().cpu().clone()}  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        fov = state.pop("fov", None)
        if fov is None or tuple(fov.shape) != (self.fov_size, self.fov_size):
            got = "none" if fov is None else tuple(fov.shape)
            raise CheckpointError(
                f"{getattr(self, 'name', '') or type(self).__name__}: checkpoint lacks a {self.fov_size}x{self.fov_size} "
                f"'fov' tensor (found {got}); was it saved by this stage?"
            )
        super().load_state_dict(state)  # type: ignore[misc]
        self._fov = fov.float()

    def clean_label(self, label: torch.Tensor) -> torch.Tensor:
        classes, encoding = self.data.classes, self.data.encoding
        label = restrict_to_fov(label, self.fov, classes, encoding)
        return remove_specks(label, self.params.min_component_px, classes, encoding)

    def black_outside_fov(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.fov.to(image.device, image.dtype)


_SPECK = Field(3, ge=0, le=10_000, description="remove generated vessel components smaller than this many pixels (0: keep all)")


class VesselMaskParams(LabelGeneratorParams):
    size: int | None = Field(64, ge=8, le=4096, description="side of the generated vessel maps")
    min_component_px: int = _SPECK


class VesselMask(FieldOfViewMixin, LabelGeneratorStage):
    """Noise -> vessel map at low resolution, empty outside the learned FOV."""

    name: ClassVar[str] = "fundus.vessel_mask"
    description: ClassVar[str] = "noise -> vessel map at low resolution (FOV-restricted, specks removed)"
    Params: ClassVar[type[StageParams]] = VesselMaskParams

    @property
    def fov_size(self) -> int:
        return self.size

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return self.clean_label(label)


class MaskUpscaleParams(LabelUpscalerParams):
    in_size: int | None = Field(64, ge=4, le=4096, description="side of the input vessel maps (fundus.vessel_mask's size)")
    min_component_px: int = _SPECK


class MaskUpscale(FieldOfViewMixin, LabelUpscalerStage):
    """Low-resolution vessel map -> vessel map at data.size, thin vessels drawn from noise."""

    name: ClassVar[str] = "fundus.mask_upscale"
    description: ClassVar[str] = "vessel map @in_size -> vessel map @data.size (FOV-restricted, specks removed)"
    Params: ClassVar[type[StageParams]] = MaskUpscaleParams

    @property
    def fov_size(self) -> int:
        return self.out_size

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return self.clean_label(label)


class FundusImageParams(TranslatorParams):
    pass


class FundusImage(FieldOfViewMixin, TranslatorStage):
    """Vessel map -> colour fundus photograph, black outside the learned FOV."""

    name: ClassVar[str] = "fundus.image"
    description: ClassVar[str] = "vessel map -> RGB fundus photograph (black outside the FOV)"
    Params: ClassVar[type[StageParams]] = FundusImageParams

    @property
    def fov_size(self) -> int:
        return self.size

    def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.black_outside_fov(image)


class FundusJointParams(JointParams):
    min_component_px: int = _SPECK


class FundusJoint(FieldOfViewMixin, JointStage):
    """Single-stage baseline: noise -> fundus photograph and vessel map together, same FOV handling."""

    name: ClassVar[str] = "fundus.joint"
    description: ClassVar[str] = "single-stage baseline: noise -> (RGB fundus photograph, vessel map) at data.size"
    Params: ClassVar[type[StageParams]] = FundusJointParams

    @property
    def fov_size(self) -> int:
        return self.data.size

    def postprocess_label(self, label: torch.Tensor) -> torch.Tensor:
        return self.clean_label(label)

    def postprocess_image(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.black_outside_fov(image)


FUNDUS_STAGES: dict[str, type] = {cls.name: cls for cls in (VesselMask, MaskUpscale, FundusImage, FundusJoint)}
