"""Dataset configuration, loading and the deterministic train/test split."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from msaug.errors import ConfigError, DataError
from msaug.sample import Dataset, ListDataset


#: The one setting through which msaug finds real datasets: a folder holding them (``DRIVE/``,
#: ``cxr-lungs/``, ...). Pipelines say ``root: $MSAUG_DATA/DRIVE``; real-data tests skip without it.
DATA_ENV = "MSAUG_DATA"
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def real_data_root() -> Path | None:
    """The folder named by ``$MSAUG_DATA``, or None when the variable is unset or empty."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def expand_root(text: str) -> Path:
    """A dataset root with ``~`` and environment variables (``$MSAUG_DATA``, ``${MSAUG_DATA}``) expanded.

    An unset variable is a :class:`ConfigError` naming it, rather than a folder literally called ``$MSAUG_DATA``.
    """
    missing = [a or b for a, b in _VARIABLE.findall(text) if not os.environ.get(a or b)]
    if missing:
        hint = f" (point {DATA_ENV} at the folder that holds your real datasets)" if DATA_ENV in missing else ""
        raise ConfigError(f"{text!r} uses the environment variable ${missing[0]}, which is not set{hint}")
    return Path(os.path.expandvars(text)).expanduser()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(Strict):
    """Deterministic train/test split of the real dataset (fractions of the cases)."""

    train: float = Field(0.8, gt=0, le=1, description="share of cases used to train the stages")
    test: float = Field(0.2, ge=0, lt=1, description="share of cases held out for evaluation")
    seed: int = Field(0, description="seed of the case shuffle")

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.train + self.test > 1.0 + 1e-9:
            raise ValueError(f"train + test must be at most 1, got {self.train} + {self.test}")
        return self


class DataConfig(Strict):
    """The real dataset the stages learn from."""

    dataset: str = Field(description="registered dataset name, e.g. xray.phantom, folder")
    root: Path | None = Field(None, description="dataset folder (relative paths resolve against the YAML's folder)")
    size: int = Field(256, ge=8, le=8192, description="side in pixels at which samples are loaded")
    count: int | None = Field(None, ge=1, le=1_000_000, description="phantoms: cases to make; real data: use at most this many")
    seed: int = Field(0, description="phantom datasets: seed of case 0")
    classes: list[str] | None = Field(None, description="folder dataset: class names (index encoding: background first)")
    encoding: Literal["index", "multilabel"] | None = Field(None, description="folder dataset: label encoding")
    channels: int | None = Field(None, ge=1, le=4, description="folder dataset: image channels (1 grey, 3 RGB)")
    split: SplitConfig = Field(default_factory=SplitConfig)
    options: dict[str, Any] = Field(default_factory=dict, description="dataset-specific options (see msaug datasets list)")



def split_indices(n: int, split: SplitConfig) -> dict[str, list[int]]:
    """Deterministic case split: a seeded shuffle, then the first ``train`` share trains.

    At least one case always goes to ``train``; ``test`` gets its rounded share (at least one
    when ``test > 0`` and two or more cases exist).
    """
    if n < 1:
        raise DataError("the dataset is empty: no samples to split")
    order = np.random.default_rng(split.seed).permutation(n).tolist()
    n_test = int(round(n * split.test))
    if split.test > 0 and n >= 2:
        n_test = max(1, n_test)
    n_test = min(n_test, n - 1)
    n_train = max(1, min(n - n_test, int(round(n * split.train))))
    return {"train": sorted(order[:n_train]), "test": sorted(order[n - n_test :]) if n_test else []}


def subset(dataset: Dataset, indices: list[int]) -> ListDataset:
    return ListDataset(dataset.spec, [dataset[i] for i in indices])


def load_dataset(config: DataConfig, registries: Any = None) -> Dataset:
    """Build the dataset named by ``config.dataset`` through the dataset registry."""
    from msaug.plugins import get_registries

    registries = registries or get_registries()
    factory = registries.datasets.get(config.dataset)
    dataset = factory(config)
    if len(dataset) == 0:
        where = f" in {config.root}" if config.root else ""
        raise DataError(f"dataset {config.dataset!r} has no samples{where}")
    return dataset
