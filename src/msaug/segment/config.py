"""The ``evaluate:`` block of a pipeline YAML: the segmenter and the protocols (pydantic, unknown keys are errors).

The segment layer owns these types, so :func:`msaug.segment.evaluate.evaluate_pipeline` needs
nothing of the pipeline; :mod:`msaug.pipeline.schema` nests them in ``PipelineConfig`` and
exports them under its own name too. ``docs/pipelines.md`` documents every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from msaug.data import Strict

__all__ = ["NEEDS_SYNTHETIC", "PROTOCOLS", "EvaluateConfig", "ProtocolName", "SegmenterConfig"]

ProtocolName = Literal["real", "synth", "synth_finetune", "mix"]
"""The segmentation training protocols (:mod:`msaug.segment.protocols`); the one place their names are declared."""
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)
#: the protocols that train on generated pairs
NEEDS_SYNTHETIC = frozenset(PROTOCOLS) - {"real"}


class SegmenterConfig(Strict):
    arch: str = Field("unet", description="segmenter architecture (msaug segmenters list)")
    encoder: str = Field("tu-resnet18", description="encoder name (timm encoders with the tu- prefix)")
    weights: Path | None = Field(None, description="local encoder weights file; nothing is downloaded")
    steps: int = Field(600, ge=1, description="training steps per protocol")
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    size: int | Literal["native"] | None = Field(
        None,
        description="side of the square the segmenter works on (default: data.size); native: the square side of the "
        "largest real training case on its original grid (584 for DRIVE), so nothing is resampled",
    )
    patch: int | None = Field(
        None, ge=16, le=8192,
        description="side of the random training crops and of the sliding prediction window (default: whole images); "
        "images no larger than the patch are used whole",
    )
    window_overlap: float = Field(0.25, ge=0, lt=1, description="sliding-window prediction: share of the window that neighbours overlap")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        """One clear message for every bad value (pydantic would list one per member of the union)."""
        if v is None or v == "native" or (isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= 8192):
            return v
        raise ValueError(f"size must be 'native' or an int from 8 to 8192, got {v!r}")

    def patch_problem(self, patch_size: int) -> str | None:
        """Why this segmenter cannot learn from native-resolution patches of ``patch_size`` px (``None``: it can).

        Such pairs (``data.crops``) have the pixel scale of the original cases, so the segmenter
        must work on the original grid (``size: native``) from training crops no larger than them.
        """
        if self.size != "native":
            return f"the pairs are {patch_size} px patches at the original resolution: set evaluate.segmenter.size: native"
        if self.patch is None or self.patch > patch_size:
            shown = "whole images" if self.patch is None else f"{self.patch} px crops"
            return (f"the pairs are {patch_size} px patches at the original resolution, but the segmenter trains on {shown}: "
                    f"set evaluate.segmenter.patch to at most {patch_size}")
        return None


class EvaluateConfig(Strict):
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    protocols: list[ProtocolName] = Field(
        default_factory=lambda: ["real", "mix"], description="training protocols compared on the real test split"
    )
    mix_ratio: float = Field(0.5, ge=0, le=1, description="mix protocol: share of synthetic pairs in each batch")
    qc_min_dice: float | None = Field(None, ge=0, le=1, description="drop generated pairs whose QC Dice is below this")
    reuse_real: Path | None = Field(
        None,
        description="another run's folder (or its evaluation/ folder): its real-protocol segmenter is copied and reused "
        "when it was trained on the same cases with the same segmenter settings and seed (checked by a key), else trained here",
    )
    inception_weights: Path | None = Field(
        None,
        description="local Inception v3 weights for FID/KID of the generated images: the FID reference network's "
        "(weights-inception-2015-12-05-6726825d.pth, needs msaug[fid]) gives FID comparable with published ones; "
        "torchvision's inception_v3 state dict gives a Fréchet distance that is not FID. Never downloaded",
    )
    metrics_at: Literal["native", "segmenter"] = Field(
        "native",
        description="where test metrics are computed: native (each test image's original grid, inside its ROI; "
        "datasets without one are native at data.size) or segmenter (the square at the segmenter's size)",
    )

    @field_validator("reuse_real")
    @classmethod
    def _reuse_real(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_dir():
            raise ValueError(f"{v} is not a folder; give another run's folder (or its evaluation/ folder)")
        return v
