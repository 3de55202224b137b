"""The Stage contract: one generator step from an input modality to an output modality.

A stage is built from validated params and the dataset's :class:`~msaug.sample.DataSpec`,
declares its ``input`` and ``output`` modalities (the composer checks they connect),
learns from real pairs in :meth:`Stage.fit` (teacher forcing: each stage is trained on
views of the real data, independently of the others) and produces outputs in
:meth:`Stage.generate` from a per-sample :class:`~msaug.rng.BatchRNG`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from msaug.errors import DataError
from msaug.modality import Modality, Noise
from msaug.progress import PlainReporter, Reporter
from msaug.rng import BatchRNG
from msaug.sample import DataSpec, Sample

log = logging.getLogger(__name__)


class StageParams(BaseModel):
    """Base of every stage's params model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Budget:
    """How much a stage may train: a number of steps, wall-clock seconds, or both (first hit wins)."""

    steps: int | None = None
    seconds: float | None = None

    def exhausted(self, step: int, elapsed: float) -> bool:
        if self.steps is not None and step >= self.steps:
            return True
        return self.seconds is not None and elapsed >= self.seconds

    def __str__(self) -> str:
        parts = [f"{self.steps} steps"] if self.steps is not None else []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        return " or ".join(parts) or "unbounded"


@dataclass
class Pairs:
    """Training pairs for one stage, derived from the real training split.

    ``inputs`` is ``None`` when the stage's input is :class:`~msaug.modality.Noise`; for
    stages with several outputs, ``targets`` holds one stacked tensor per output.
    ``roi`` holds the samples' regions of interest where the dataset has them. Image
    targets are ``None`` when the dataset has labels only; only stages that declare
    ``fits_without_images`` are given such pairs.
    """

    input: Modality
    output: Modality | tuple[Modality, ...]
    inputs: torch.Tensor | None
    targets: torch.Tensor | tuple[torch.Tensor | None, ...] | None
    ids: list[str] = field(default_factory=list)
    roi: torch.Tensor | None = None

    def __len__(self) -> int:
        tensors = self.targets if isinstance(self.targets, tuple) else (self.targets,)
        first = next((t for t in (*tensors, self.inputs) if t is not None), None)
        return int(first.shape[0]) if first is not None else len(self.ids)

    @classmethod
    def from_samples(cls, stage: Stage, samples: Sequence[Sample], spec: DataSpec, who: str | None = None) -> Pairs:
        """``stage``'s training pairs: its input and output modalities' views of real samples (teacher forcing).

        Image targets are ``None`` when the samples have labels only, which only a stage that
        does not learn images accepts (a :class:`~msaug.errors.DataError` naming ``who``
        otherwise). ``roi`` is stacked where ``spec`` has regions of interest and every sample one.
        """
        labels_only = any(s.image is None for s in samples)
        if labels_only and stage.learns_images():
            raise DataError(f"{who or type(stage).__name__} learns images, but dataset samples have labels only (e.g. {samples[0].id!r})")
        inputs = None if isinstance(stage.input, Noise) else torch.stack([stage.input.view(s) for s in samples])
        targets = tuple(
            None if labels_only and m.kind == "image" else torch.stack([m.view(s) for s in samples]) for m in stage.outputs
        )
        roi = None
        if spec.has_roi and all(s.roi is not None for s in samples):
            roi = torch.stack([torch.as_tensor(s.roi, dtype=torch.bool) for s in samples])
        return cls(stage.input, stage.output, inputs, targets if len(targets) > 1 else targets[0], [s.id for s in samples], roi)


@dataclass
class FitContext:
    """Everything a stage needs from its surroundings while fitting."""

    out_dir: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    resume: bool = True
    #: called as ``progress(step, total_steps, {"loss": ...})`` by trainers that report progress
    #: (a hook for the caller, e.g. a test or a notebook; the bar itself goes to ``reporter``)
    progress: Callable[[int, int | None, dict[str, float]], None] | None = None
    #: False: show no progress bar (the runner sets it from ``--quiet``)
    show_progress: bool = True
    started: float = field(default_factory=time.monotonic)
    #: where a stage's messages and progress bar go: ``reporter.task(...)`` for a bar,
    #: ``reporter.warning(...)`` for a problem worked around (see :mod:`msaug.progress`); the
    #: runner passes the command line's, a stage fitted on its own reports plain lines on stderr
    reporter: Reporter = field(default_factory=PlainReporter)

    def __post_init__(self) -> None:
        if not self.show_progress:  # a stage that opens reporter.task(...) shows no bar then, whether or not it reads show_progress
            self.reporter = self.reporter.without_progress()


class Stage(ABC):
    """Base class of every stage.

    Subclasses set ``Params`` (a :class:`StageParams` subclass) and implement the
    ``input`` / ``output`` properties, :meth:`generate`, :meth:`state_dict` and
    :meth:`load_state_dict`; learned stages implement :meth:`fit`.
    """

    #: the registry name, e.g. ``"gan.translator"``; set by the registry
    name: ClassVar[str] = ""
    #: one line shown by ``msaug stages list``
    description: ClassVar[str] = ""
    Params: ClassVar[type[StageParams]] = StageParams
    #: False for stages that need no training (fit only stores statistics)
    trainable: ClassVar[bool] = True
    #: True for stages with an image output that can also fit on a labels-only dataset
    #: (their image targets are then None), such as ``core.lab2im`` with default intensities
    fits_without_images: ClassVar[bool] = False

    #: params fields that mean "the data's size" when left unset (``None``); :meth:`resolve_params`
    #: fills them in, so ``self.params`` and ``pipeline.resolved.yaml`` show the size the stage works at
    data_size_params: ClassVar[tuple[str, ...]] = ("size",)

    def __init__(self, params: StageParams | dict[str, Any] | None, data: DataSpec):
        if not isinstance(params, StageParams):
            params = self.Params(**(params or {}))
        self.params = self.resolve_params(params, data)
        self.data = data

    @classmethod
    def resolve_params(cls, params: StageParams, data: DataSpec) -> StageParams:
        """``params`` with every default that depends on the data made explicit (called once, by ``__init__``).

        By default each field named in :attr:`data_size_params` that is ``None`` becomes
        ``data.size``; a stage with other data-dependent defaults extends this.
        """
        unset = {name: data.size for name in cls.data_size_params if name in type(params).model_fields and getattr(params, name) is None}
        return params.model_copy(update=unset) if unset else params

    @property
    @abstractmethod
    def input(self) -> Modality:
        """The modality this stage consumes."""

    @property
    @abstractmethod
    def output(self) -> Modality | tuple[Modality, ...]:
        """The modality (or modalities) this stage produces."""

    @property
    def outputs(self) -> tuple[Modality, ...]:
        out = self.output
        return out if isinstance(out, tuple) else (out,)

    def fit(self, pairs: Pairs, budget: Budget, ctx: FitContext) -> dict[str, Any]:
        """Learn from real pairs within ``budget``; return summary metrics for the report."""
        return {}

    def release_training(self) -> None:
        """Drop what only fitting needed (optimisers, discriminators, the training tensors).

        The runner calls it once the stage is saved, so a run's later phases (generation, the
        segmenters) do not hold every stage's training state on the device. :meth:`generate`
        and :meth:`state_dict` must keep working. Default: nothing is held.
        """

    @abstractmethod
    @torch.no_grad()
    def generate(self, x: torch.Tensor | None, rng: BatchRNG) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Produce a batch of outputs.

        ``x`` is a batch of the input modality, or ``None`` for noise-input stages (which
        draw their noise from ``rng``). Row *b* must depend only on ``x[b]`` and stream *b*
        of ``rng``. Label outputs are hard (0/1) label maps.
        """

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that fully restore the fitted stage (saved with safetensors)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a fitted stage from :meth:`state_dict`."""

    def to(self, device: torch.device | str) -> Stage:
        """Move the stage's networks to ``device``; stages without networks ignore it."""
        return self

    def learns_images(self) -> bool:
        """Whether fitting needs real images: an image in or out, unless ``fits_without_images``."""
        return any(m.kind == "image" for m in (self.input, *self.outputs)) and not self.fits_without_images

    def noise_dim(self) -> int:
        inp = self.input
        return inp.dim if isinstance(inp, Noise) else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name or '?'}: {self.input} -> {', '.join(map(str, self.outputs))})"
