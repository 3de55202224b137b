"""The pipeline YAML schema (pydantic models; unknown keys are errors).

``docs/pipelines.md`` documents every key; ``tests/test_docs.py`` checks the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from msaug.data import DataConfig, SplitConfig

__all__ = ["DataConfig", "SplitConfig", "BudgetConfig", "StageConfig", "GenerateConfig", "SegmenterConfig", "EvaluateConfig", "PipelineConfig"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetConfig(Strict):
    steps: int | None = Field(None, ge=0, le=100_000_000, description="training steps")
    seconds: float | None = Field(None, gt=0, description="wall-clock seconds")


class StageConfig(Strict):
    use: str = Field(description="registered stage name, e.g. xray.image")
    name: str | None = Field(None, description="short name for --set paths and the run folder (default: from use)")
    params: dict[str, Any] = Field(default_factory=dict, description="the stage's params (see msaug stages list)")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="how long the stage trains")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not all(c.isalnum() or c in "-_" for c in v)):
            raise ValueError(f"stage names may hold letters, digits, '-' and '_' only, got {v!r}")
        return v

    @property
    def short_name(self) -> str:
        return self.name or self.use.split(".")[-1]


class GenerateConfig(Strict):
    count: int = Field(200, ge=0, le=10_000_000, description="synthetic pairs to generate")
    batch_size: int = Field(16, ge=1, le=4096, description="pairs per generation batch")
    seed: int = Field(0, description="generation seed: pair i depends only on (checkpoints, seed, i)")
    bit_depth: Literal[8, 16] | None = Field(None, description="image PNG bit depth (default: 16 for grey, 8 for RGB)")


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


class EvaluateConfig(Strict):
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    protocols: list[Literal["real", "synth", "synth_finetune", "mix"]] = Field(
        default_factory=lambda: ["real", "mix"], description="training protocols compared on the real test split"
    )
    mix_ratio: float = Field(0.5, ge=0, le=1, description="mix protocol: share of synthetic pairs in each batch")
    qc_min_dice: float | None = Field(None, ge=0, le=1, description="drop generated pairs whose QC Dice is below this")
    reuse_real: Path | None = Field(
        None,
        description="another run's folder (or its evaluation/ folder): its real-protocol segmenter is copied and reused "
        "when it was trained on the same cases with the same segmenter settings and seed (checked by a key), else trained here",
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


class PipelineConfig(Strict):
    name: str = Field(description="pipeline name, used for the default run folder")
    description: str = ""
    data: DataConfig
    stages: list[StageConfig] = Field(min_length=1)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig | None = Field(None, description="segmentation evaluation after generation (omit to skip)")
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named override sets: dotted key paths (or nested maps) to values"
    )
    seed: int = Field(0, description="training seed")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        """The name becomes the default run folder ``runs/<name>-<profile>``: no path may hide in it."""
        if not v or v.startswith(".") or not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError(f"the pipeline name may hold letters, digits, '-', '_' and '.' (not first) only, got {v!r}")
        return v

    @model_validator(mode="after")
    def _unique_stage_names(self) -> PipelineConfig:
        seen: dict[str, int] = {}
        for i, st in enumerate(self.stages):
            if st.short_name in seen:
                raise ValueError(
                    f"stages[{i}] and stages[{seen[st.short_name]}] share the name {st.short_name!r}; give one a 'name:'"
                )
            seen[st.short_name] = i
        return self
