"""Dataset configuration, loading and the deterministic train/test split."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from msaug.errors import ConfigError, DataError
from msaug.resize import SquareFit
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


#: ``data.split.group_by`` naming a table column: ``cases.csv:patientid``
_TABLE_COLUMN = re.compile(r"(?P<table>[^:]+\.(?:csv|tsv)):(?P<column>.+)", re.IGNORECASE)
SplitBy = Literal["shuffle", "official"]
SPLIT_FORMS = (
    "a mapping {train: 0.8, test: 0.2, seed: 0} (seeded shuffle of the cases), "
    "the same with group_by: TABLE.csv:COLUMN or a regex with one group (whole groups, e.g. patients, go to train or test), "
    "or 'official' (the published split of datasets that have one, see msaug datasets list)"
)


class SplitConfig(Strict):
    """Deterministic train/test split of the real dataset.

    ``by: shuffle`` (the default) shuffles the cases with ``seed`` and gives ``test`` of them
    to evaluation; with ``group_by`` whole groups (patients) are shuffled instead, so one
    patient never lands in both halves. ``by: official`` takes the dataset's published split
    (DRIVE: training 21-40 / test 01-20), so results compare with published ones.
    """

    by: SplitBy = Field("shuffle", description="shuffle (seeded, by the train/test shares) or official (the dataset's published split)")
    train: float = Field(0.8, gt=0, le=1, description="share of cases used to train the stages")
    test: float = Field(0.2, ge=0, lt=1, description="share of cases held out for evaluation")
    seed: int = Field(0, description="seed of the case shuffle")
    group_by: str | None = Field(
        None, description="keep groups whole: TABLE.csv:COLUMN (a table in data.root, first column = sample id) or a regex on the sample id whose first group is the group"
    )
    fraction: float = Field(
        1.0, gt=0, le=1, description="share of the training cases used (0.1: the low-data experiment); a seeded subset, whole groups with group_by; any split form"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip() in ("official", "shuffle"):
                return {"by": value.strip()}
            raise ValueError(f"unknown split {value!r}; valid split forms: {SPLIT_FORMS}")
        return value

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.by == "official":  # the defaults may stay (a resolved pipeline writes every key)
            defaults = {"train": 0.8, "test": 0.2, "group_by": None}
            given = [key for key, default in defaults.items() if getattr(self, key) != default]
            if given:
                raise ValueError(f"the official split fixes which cases train and test; remove {', '.join(given)}")
            return self
        if self.train + self.test > 1.0 + 1e-9:
            raise ValueError(f"train + test must be at most 1, got {self.train} + {self.test}")
        if self.group_by is not None and not _TABLE_COLUMN.fullmatch(self.group_by):
            try:
                groups = re.compile(self.group_by).groups
            except re.error as exc:
                raise ValueError(f"group_by {self.group_by!r} is neither TABLE.csv:COLUMN nor a valid regex ({exc})") from None
            if groups < 1:
                raise ValueError(f"group_by {self.group_by!r}: a regex needs a group, e.g. '^(\\w+)_' (or name a table column, TABLE.csv:COLUMN)")
        return self

    def table_column(self) -> tuple[str, str] | None:
        """``(table, column)`` when ``group_by`` names a table column, else None (a regex)."""
        m = _TABLE_COLUMN.fullmatch(self.group_by or "")
        return (m["table"], m["column"]) if m else None


class DataConfig(Strict):
    """The real dataset the stages learn from."""

    dataset: str = Field(description="registered dataset name, e.g. xray.phantom, folder")
    root: Path | None = Field(None, description="dataset folder (relative paths resolve against the YAML's folder)")
    size: int = Field(256, ge=8, le=8192, description="side in pixels at which samples are loaded")
    count: int | None = Field(None, ge=1, le=1_000_000, description="phantoms: cases to make; real data: use at most this many")
    seed: int = Field(0, description="phantom datasets: seed of case 0")
    classes: list[str] | None = Field(None, description="folder and datalist datasets: class names (index encoding: background first)")
    encoding: Literal["index", "multilabel"] | None = Field(None, description="folder and datalist datasets: label encoding")
    channels: int | None = Field(None, ge=1, le=4, description="folder and datalist datasets: image channels (1 grey, 3 RGB)")
    label_values: dict[int | str, str] | None = Field(
        None, description="folder and datalist datasets: stored pixel value (or '#rrggbb' colour) -> class name, e.g. {0: background, 255: lung}"
    )
    square_fit: SquareFit | None = Field(None, description="how non-square images become square: pad (folder default), squash or crop")
    crops: int | None = Field(
        None, ge=1, le=100_000,
        description="generate native-resolution patches: the stages learn from this many random size x size crops of the "
        "training cases at their original resolution (not whole cases shrunk to size), and the pairs are such patches",
    )
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


@dataclass(frozen=True)
class Split:
    """Which cases (positions in the dataset) train the stages and which are held out.

    ``groups`` holds the group of each case (by position) where the split kept groups whole
    (``group_by``); ``split.json`` records them.
    """

    train: list[int]
    test: list[int]
    by: str = "shuffle"
    groups: list[str] | None = None
    fraction: float = 1.0

    def groups_in(self, indices: list[int]) -> list[str]:
        """The distinct groups of cases ``indices`` (empty without ``group_by``)."""
        return sorted({self.groups[i] for i in indices}) if self.groups is not None else []

    def describe(self) -> str:
        text = f"{len(self.train)} train / {len(self.test)} test cases"
        if self.fraction < 1.0:
            text += f" ({self.fraction:g} of the training cases)"
        if self.by == "official":
            return text + " (the official split)"
        if self.groups is not None:
            return text + f" ({len(self.groups_in(self.train))} / {len(self.groups_in(self.test))} groups)"
        return text


def sample_ids(dataset: Dataset) -> list[str]:
    """The id of every sample: the dataset's ``ids`` where it lists them (no file is read), else each sample's."""
    ids = getattr(dataset, "ids", None)
    if ids is not None and len(ids) == len(dataset):
        return [str(i) for i in ids]
    return [str(dataset[i].id) for i in range(len(dataset))]


def split_dataset(dataset: Dataset, config: DataConfig) -> Split:
    """The split ``config.split`` asks for; every problem is a ConfigError/DataError naming the key.

    Called by ``msaug pipeline check`` (and so before ``run`` trains anything).
    """
    split = config.split
    n = len(dataset)
    if split.by == "official":
        chosen = _official(dataset, config)
    elif split.group_by is None:
        indices = split_indices(n, split)
        chosen = Split(indices["train"], indices["test"])
    else:
        ids = sample_ids(dataset)
        table = split.table_column()
        groups = _groups_from_table(ids, config, *table) if table else _groups_from_pattern(ids, split.group_by)
        per_case = [groups[i] for i in ids]
        train, test = _grouped_indices(per_case, split)
        chosen = Split(train, test, "shuffle", per_case)
    return train_fraction(chosen, split.fraction, split.seed)


def train_fraction(split: Split, fraction: float, seed: int) -> Split:
    """Keep a seeded ``fraction`` of ``split``'s training cases (at least one); the test cases stay.

    With groups the subset is of whole groups, the share of cases as close to ``fraction`` as
    whole groups allow. The subset does not depend on how the test cases were chosen beyond
    the training list itself, so 10 % of an official split is always drawn from its training half.
    """
    if fraction >= 1.0:
        return split
    rng = np.random.default_rng([seed, 0x5EED])  # its own stream: the split's shuffle stays as it was
    target = max(1.0, len(split.train) * fraction)
    if split.groups is None:
        keep = rng.permutation(len(split.train))[: max(1, int(round(target)))]
        train = sorted(split.train[k] for k in keep)
    else:
        names = split.groups_in(split.train)
        members = {g: [i for i in split.train if split.groups[i] == g] for g in names}
        order = [names[k] for k in rng.permutation(len(names))]
        train = list(members[order[0]])
        for g in order[1:]:  # shuffled groups, each taken when it brings the case count closer to the target
            if abs(len(train) + len(members[g]) - target) < abs(len(train) - target) - 1e-9:
                train += members[g]
        train = sorted(train)
    return Split(train, split.test, split.by, split.groups, fraction)


def _official(dataset: Dataset, config: DataConfig) -> Split:
    official = getattr(dataset, "official_split", None)
    if not callable(official):
        raise ConfigError(f"data.split: dataset {config.dataset!r} has no official split; valid split forms: {SPLIT_FORMS}")
    parts = official()
    n = len(dataset)
    train, test = sorted(parts.get("train", [])), sorted(parts.get("test", []))
    if set(train) & set(test) or any(not 0 <= i < n for i in (*train, *test)):
        raise DataError(f"data.split: the official split of {config.dataset!r} is inconsistent (overlapping or out-of-range cases)")
    if not train:
        raise DataError(f"data.split: the official split of {config.dataset!r} has no training cases among the {n} loaded")
    return Split(train, test, "official")


def _groups_from_pattern(ids: list[str], pattern: str) -> dict[str, str]:
    rx = re.compile(pattern)
    groups = {}
    for sample_id in ids:
        m = rx.search(sample_id)
        if m is None or m.group(1) is None:
            raise DataError(f"data.split.group_by: the pattern {pattern!r} does not match the sample id {sample_id!r}; every case needs a group")
        groups[sample_id] = m.group(1)
    return groups


def _groups_from_table(ids: list[str], config: DataConfig, table: str, column: str) -> dict[str, str]:
    import csv

    if config.root is None and not Path(table).is_absolute():
        raise ConfigError(f"data.split.group_by: {table} is looked up in data.root, which is not set")
    path = Path(table) if Path(table).is_absolute() else Path(config.root) / table  # type: ignore[arg-type]
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except FileNotFoundError:
        raise DataError(f"data.split.group_by: cases table {path} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data.split.group_by: cannot read the cases table {path} ({exc})") from None
    if not rows:
        raise DataError(f"data.split.group_by: the cases table {path} is empty")
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise DataError(f"data.split.group_by: {path} has no column {column!r}; columns: {', '.join(header)}")
    at = header.index(column)
    by_id = {row[0].strip(): row[at].strip() for row in rows[1:] if row and len(row) > at}
    groups = {}
    for sample_id in ids:
        group = by_id.get(sample_id)
        if not group:
            raise DataError(
                f"data.split.group_by: {path} has no {column!r} for the sample {sample_id!r} "
                f"(rows are matched by their first column, {header[0]!r}, to the file stem); every case needs a group"
            )
        groups[sample_id] = group
    return groups


def _grouped_indices(groups: list[str], split: SplitConfig) -> tuple[list[int], list[int]]:
    """Whole groups to train or test: a seeded shuffle of the groups, test's share of the cases as close as possible."""
    names = sorted(set(groups))
    members: dict[str, list[int]] = {g: [] for g in names}
    for i, g in enumerate(groups):
        members[g].append(i)
    n = len(groups)
    if len(names) < 2 and split.test > 0:
        raise DataError(f"data.split.group_by: every case is in the one group {names[0]!r}; a grouped split needs two groups or more")
    order = [names[i] for i in np.random.default_rng(split.seed).permutation(len(names))]

    def closest(candidates: list[str], target: float, least: int, most: int) -> int:
        best, best_gap, total = least, None, 0
        sizes = [0] + [total := total + len(members[g]) for g in candidates]
        for k in range(least, most + 1):
            gap = abs(sizes[k] - target)
            if best_gap is None or gap < best_gap - 1e-9:
                best, best_gap = k, gap
        return best

    least = 1 if split.test > 0 and len(names) >= 2 else 0
    n_test = closest(order[::-1], n * split.test, least, len(names) - 1) if split.test > 0 else 0
    test_groups = order[len(order) - n_test :]
    rest = order[: len(order) - n_test]
    n_train = closest(rest, n * split.train, 1, len(rest))
    train = sorted(i for g in rest[:n_train] for i in members[g])
    test = sorted(i for g in test_groups for i in members[g])
    return train, test


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
