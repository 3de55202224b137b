"""The pipeline YAML schema (pydantic models; unknown keys are errors).

``docs/pipelines.md`` documents every key; ``tests/test_docs.py`` checks the two agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from msaug.data import DataConfig, SplitConfig
from msaug.segment.config import EvaluateConfig, SegmenterConfig

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
