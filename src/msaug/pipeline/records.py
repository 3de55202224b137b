"""Typed records of a finished run: :class:`RunReport` is report.json, written by the run and read back by ``msaug compare``.

The models describe report.json exactly as :func:`msaug.pipeline.report.write_report` writes
it: the same keys, nesting and values, in the same order. A record keeps what it was given
and nothing more (:meth:`Record.to_json` dumps only the keys that were set), so reading a
report and writing it again gives the same file.

Parts whose every key msaug writes itself are closed (an unknown key is an error); the
segmentation evaluation is open where plugins or later figures add keys (``OpenRecord``):
the keys described here are typed, the others are kept as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from msaug.errors import ConfigError, DataError
from msaug.io import read_json, write_json
from msaug.pipeline.config import format_path

Number = int | float
"""A figure as written: an int stays an int and a float a float (``1`` is not rewritten as ``1.0``)."""

R = TypeVar("R", bound="Record")


class Record(BaseModel):
    """A JSON record whose every key is described here."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able Python values; keys that were never set (absent when read) stay absent."""
        return self.model_dump(mode="python", exclude_unset=True)

    def write(self, path: str | Path) -> None:
        """Write the record to ``path`` atomically (temporary name, then rename)."""
        write_json(path, self.to_json())


class OpenRecord(Record):
    """A JSON record whose described keys are typed and whose other keys are kept as written."""

    model_config = ConfigDict(extra="allow")


def read_record(path: str | Path, model: type[R], what: str) -> R:
    """Read ``path`` as ``model``; a missing, unreadable or invalid file is a :class:`ConfigError` naming the file and the key."""
    path = Path(path)
    try:
        data = read_json(path)
    except DataError as exc:
        raise ConfigError(f"{exc}; expected {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            given = err.get("input")
            shown = f" (got {given!r})" if not isinstance(given, (dict, list)) and err["type"] != "missing" else ""
            problems.append(f"{format_path(err['loc'])}: {err['msg']}{shown}")
        raise ConfigError(f"{path}: not {what}: " + "; ".join(problems)) from None


# --- the run: data, stages, generation ------------------------------------------------------


class DataSummary(Record):
    """``data``: the dataset, the size the stages learn and generate at, the split and the classes."""

    dataset: str
    size: int
    train: int
    test: int
    classes: list[str]
    encoding: str


class StageBudget(Record):
    """A stage's training budget as it trained with it (``steps: null``: no step limit)."""

    steps: int | None = None
    seconds: Number | None = None


class LossCurve(Record):
    """One loss of a stage: its first and last logged value and the last step it was logged at."""

    first: float
    last: float
    steps: int


class StageRecord(Record):
    """One entry of ``stages``: what the stage read and produced, how long it trained, its losses."""

    name: str
    use: str
    input: str | None
    outputs: list[str] | None
    seconds: Number | None
    budget: StageBudget | None
    summary: dict[str, Any]
    losses: dict[str, LossCurve]


class GenerationRecord(Record):
    """``generate``: the pairs in ``synthetic/``, the time and rate of this run's generation (``null``: none generated)."""

    count: int
    seconds: Number | None
    pairs_per_second: Number | None
    seed: int


# --- the evaluation (msaug.segment.evaluate.evaluate_pipeline, plus the per-stage measurement) --


class MetricStat(OpenRecord):
    """A metric over test images: mean, std and how many images had a value."""

    mean: Number | None = None
    std: Number | None = None
    n: int | None = None


class SegmentationMetrics(OpenRecord):
    """A segmenter's metrics on the real test split: per class and the mean over the foreground classes, each by metric name."""

    images: int | None = None
    foreground: list[str] | None = None
    classes: dict[str, dict[str, MetricStat]] = {}
    mean: dict[str, MetricStat] = {}
    #: each test image's foreground Dice, in test order (absent from results written before it was kept)
    per_image_dice: list[Number | None] | None = None


class ProtocolResult(OpenRecord):
    """One protocol's segmenter: its test metrics, training summary and checkpoint (``reused_from`` when copied)."""

    metrics: SegmentationMetrics
    training: dict[str, Any] | None = None
    checkpoint: str | None = None


class QualityCheck(OpenRecord):
    """``qc``: the real-trained segmenter's Dice on the generated pairs, and how many the threshold kept."""

    min_dice: Number | None = None
    mean_dice: Number | None = None
    kept: int | None = None
    total: int | None = None


class NearestNeighbourIoU(OpenRecord):
    precision: Number | None = None
    coverage: Number | None = None


class Diversity(OpenRecord):
    real: Number | None = None
    synthetic: Number | None = None


class LabelRealism(OpenRecord):
    """``label_realism``: how close generated label maps come to real ones, and how varied both sets are."""

    nearest_neighbour_iou: NearestNeighbourIoU | None = None
    diversity: Diversity | None = None


class Resolution(OpenRecord):
    """``resolution``: where the segmentation metrics were computed and what the segmenter saw."""

    metrics_at: str | None = None
    description: str | None = None


class PairedDifference(OpenRecord):
    """A protocol against ``real`` on the same test images (:func:`msaug.segment.paired.paired_difference`)."""

    images: int
    mean_difference: Number | None = None
    median_difference: Number | None = None
    ci95: list[Number] | None = None
    better: int = 0
    worse: int = 0
    tied: int = 0
    wilcoxon_p: Number | None = None


class Evaluation(OpenRecord):
    """``evaluation``: the segmenters trained under each protocol, pair QC, realism figures, the per-stage table."""

    segmenter: dict[str, Any] | None = None
    seed: int | None = None
    pairs: dict[str, int] | None = None
    resolution: Resolution | None = None
    mix_ratio: Number | None = None
    protocols: dict[str, ProtocolResult] = {}
    qc: QualityCheck | None = None
    image_realism: dict[str, Any] | None = None
    label_realism: LabelRealism | None = None
    memorisation: dict[str, Any] | None = None
    stages: dict[str, Any] | None = None
    #: each other protocol against ``real``, image by image
    paired: dict[str, PairedDifference] | None = None

    def mean(self, protocol: str, metric: str) -> Number | None:
        """The mean of ``metric`` over the foreground classes for ``protocol`` (``None``: not evaluated)."""
        result = self.protocols.get(protocol)
        stat = result.metrics.mean.get(metric) if result else None
        return stat.mean if stat else None

    def per_image_dice(self, protocol: str) -> list[Number | None] | None:
        """``protocol``'s foreground Dice per test image (``None``: not evaluated, or written before it was kept)."""
        result = self.protocols.get(protocol)
        return result.metrics.per_image_dice if result else None

    def class_mean(self, protocol: str, name: str, metric: str) -> Number | None:
        """The mean of ``metric`` for class ``name`` under ``protocol`` (``None``: not evaluated)."""
        result = self.protocols.get(protocol)
        stat = result.metrics.classes.get(name, {}).get(metric) if result else None
        return stat.mean if stat else None


class RunReport(Record):
    """report.json: written by ``msaug pipeline run`` when the run finishes; ``evaluation`` only when the run was evaluated."""

    pipeline: str
    profile: str | None
    sets: list[str]
    device: str
    data: DataSummary
    stages: list[StageRecord]
    generate: GenerationRecord
    #: label-map statistics by group (``real``, and ``synthetic`` when pairs were generated), each by metric plugin
    label_metrics: dict[str, dict[str, dict[str, Any]]]
    evaluation: Evaluation | None = None
    seconds_total: float


def read_run_report(path: str | Path) -> RunReport:
    """Read a run's report.json; a missing or invalid file is a :class:`ConfigError` naming it."""
    return read_record(path, RunReport, "a run report (report.json, written when msaug pipeline run finishes)")
