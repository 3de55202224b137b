"""``StageContract``: the tests every stage must pass, as a base class to subclass.

In the manner of segmentation-models-pytorch's encoder tester, a plugin's test module
subclasses :class:`StageContract` and names its stages; pytest then runs every contract
test once per stage (and per dataset the stage is tested on)::

    from msaug.testing import StageContract

    class TestLesionStages(StageContract):
        stages = ["derm.lesion_mask"]
        params = {"derm.lesion_mask": {"size": 16}}   # optional, per stage

msaug runs the same contract over every registered stage (``tests/test_stage_contract.py``),
so a stage added to the registry cannot go untested.

Everything is tiny (32 px data, 16 px stage sizes, two training steps) so that the whole
contract over all of msaug's stages takes a minute on two CPU cores.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from pydantic import ValidationError

from msaug.data import DataConfig, load_dataset
from msaug.modality import Image, Label, Noise
from msaug.plugins import get_registries
from msaug.rng import BatchRNG
from msaug.sample import Dataset, DataSpec
from msaug.stage import Budget, FitContext, Pairs, Stage
from msaug.testing.checks import check_outputs, check_rejects_unknown_params, stage_pairs
from msaug.testing.samples import TINY_VARIANTS, tiny_batch, tiny_dataset

#: params set to small values when a stage's Params has them (and they validate), so that
#: networks stay tiny in tests; a contract's ``params`` mapping overrides them
TINY_PARAM_VALUES: dict[str, int] = {"width": 4, "batch_size": 2, "noise_dim": 8, "noise_channels": 1}


def tiny_params(cls: type[Stage], data_size: int) -> dict[str, Any]:
    """Small values for the size-like and width-like params ``cls`` has.

    ``size`` becomes half the data size and ``in_size`` a quarter (so upscaling stages
    have room to upscale); ``out_size`` keeps its default (the data size); the fields of
    :data:`TINY_PARAM_VALUES` get those values. A value the params model rejects is dropped
    and the stage's own default kept.
    """
    fields = cls.Params.model_fields
    candidates: dict[str, Any] = {}
    if "size" in fields:
        candidates["size"] = max(8, data_size // 2)
    if "in_size" in fields:
        candidates["in_size"] = max(8, data_size // 4)
    candidates.update({k: v for k, v in TINY_PARAM_VALUES.items() if k in fields})
    for _ in range(len(candidates) + 1):
        try:
            cls.Params(**candidates)
            return candidates
        except ValidationError as exc:
            rejected = {str(err["loc"][0]) for err in exc.errors() if err["loc"] and err["loc"][0] in candidates}
            if not rejected:  # a required field we do not know how to fill: the contract's params must
                return candidates
            candidates = {k: v for k, v in candidates.items() if k not in rejected}
    return candidates


@dataclass
class StageCase:
    """One stage built from its tiny params and fitted on one tiny dataset (shared by a class's tests)."""

    name: str
    data_name: str
    cls: type[Stage]
    registered: bool
    params: dict[str, Any]
    dataset: Dataset
    stage: Stage
    pairs: Pairs
    summary: dict[str, Any]
    fit_seconds: float
    reported_steps: list[int] = field(default_factory=list)

    @property
    def spec(self) -> DataSpec:
        return self.dataset.spec

    def fresh_stage(self) -> Stage:
        return self.cls(self.params, self.spec)


def _stage_name(stage: str | type[Stage]) -> str:
    return stage if isinstance(stage, str) else (stage.name or stage.__name__)


class BudgetOverrun(AssertionError):
    """Raised from the progress callback when a stage trains on past its budget."""


class StageContract:
    """Contract tests for stages; subclass it and set :attr:`stages`.

    Class attributes a subclass may set:

    * ``stages``: registered stage names to test (required); a :class:`~msaug.Stage`
      subclass may stand in for a name, to test a stage before it is registered.
    * ``params``: ``{stage name: {param: value}}`` merged over :func:`tiny_params`; use it
      for params without defaults or when tiny defaults do not suit the stage.
    * ``datasets``: ``{stage name or glob: dataset name or list of names}``: registered
      datasets to fit on, loaded at ``data_size`` with ``data_count`` cases. Default: the
      stage's own domain phantom ``<prefix>.phantom`` when one is registered, else the
      built-in tiny datasets (:data:`~msaug.testing.samples.TINY_VARIANTS`: index-encoded
      grey, and multilabel RGB with a region of interest).
    * ``data_size`` (32), ``data_count`` (4), ``fit_steps`` (2), ``fit_seconds`` (0.05),
      ``batch`` (3): how small everything is.
    """

    stages: ClassVar[Sequence[str | type[Stage]]] = ()
    params: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    datasets: ClassVar[Mapping[str, str | Sequence[str]]] = {}
    data_size: ClassVar[int] = 32
    data_count: ClassVar[int] = 4
    fit_steps: ClassVar[int] = 2
    fit_seconds: ClassVar[float] = 0.05
    batch: ClassVar[int] = 3

    # ------------------------------------------------------------------ what to test on
    @classmethod
    def data_for(cls, stage_name: str) -> list[str]:
        """Names of the datasets ``stage_name`` is tested on (see the class docstring)."""
        for pattern, names in cls.datasets.items():
            if fnmatch.fnmatchcase(stage_name, pattern):
                return [names] if isinstance(names, str) else list(names)
        phantom = f"{stage_name.split('.')[0]}.phantom"
        if "." in stage_name and phantom in get_registries().datasets:
            return [phantom]
        return list(TINY_VARIANTS)

    @classmethod
    def load_data(cls, name: str) -> Dataset:
        if name in TINY_VARIANTS:
            return tiny_dataset(cls.data_size, cls.data_count, **TINY_VARIANTS[name])
        return load_dataset(DataConfig(dataset=name, size=cls.data_size, count=cls.data_count))

    @classmethod
    def stage_params(cls, name: str, stage_cls: type[Stage], spec: DataSpec) -> dict[str, Any]:
        return {**tiny_params(stage_cls, spec.size), **dict(cls.params.get(name, {}))}

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrise every contract test over (stage, dataset); class-scoped, so each is fitted once."""
        if "stage_key" not in metafunc.fixturenames:
            return
        if not self.stages:
            raise TypeError(f"{type(self).__name__}.stages is empty: list the registered stage names to test")
        keys = [(s, d) for s in self.stages for d in self.data_for(_stage_name(s))]
        metafunc.parametrize("stage_key", keys, ids=[f"{_stage_name(s)}-{d}" for s, d in keys], scope="class")

    @pytest.fixture(scope="class")
    @classmethod
    def stage_case(cls, stage_key: tuple[str | type[Stage], str], tmp_path_factory: pytest.TempPathFactory) -> StageCase:
        which, data_name = stage_key
        name = _stage_name(which)
        stage_cls = get_registries().stages.get(which) if isinstance(which, str) else which
        dataset = cls.load_data(data_name)
        params = cls.stage_params(name, stage_cls, dataset.spec)
        stage = stage_cls(params, dataset.spec)
        pairs = stage_pairs(stage, dataset, dataset.spec.has_roi)
        steps: list[int] = []
        ctx = FitContext(
            out_dir=tmp_path_factory.mktemp("fit"),
            show_progress=False,
            progress=lambda step, total, last: steps.append(int(step)),
        )
        start = time.monotonic()
        summary = stage.fit(pairs, Budget(steps=cls.fit_steps), ctx)
        seconds = time.monotonic() - start
        stage.release_training()  # as the runner does once a stage is saved: every check below runs after it
        return StageCase(name, data_name, stage_cls, isinstance(which, str), params, dataset, stage, pairs, summary, seconds, steps)

    def inputs(self, case: StageCase, count: int | None = None) -> torch.Tensor | None:
        """A batch of real inputs for the stage, or ``None`` for noise-input stages (as the runner passes)."""
        if isinstance(case.stage.input, Noise):
            return None
        return tiny_batch(case.stage.input, case.dataset, count or self.batch)

    # ------------------------------------------------------------------ the contract
    def test_registered_as_a_stage(self, stage_case: StageCase) -> None:
        assert issubclass(stage_case.cls, Stage)
        if stage_case.registered:
            entry = get_registries().stages.entry(stage_case.name)
            assert stage_case.cls.name == stage_case.name, f"registered as {stage_case.name!r} but its name is {stage_case.cls.name!r}"
            description = entry.description
        else:
            description = stage_case.cls.description or (stage_case.cls.__doc__ or "")
        assert description.strip(), f"{stage_case.name}: give the stage a description (or a docstring) for msaug stages list"

    def test_params_reject_unknown_keys(self, stage_case: StageCase) -> None:
        check_rejects_unknown_params(stage_case.cls, stage_case.params, stage_case.spec)

    def test_declares_modalities(self, stage_case: StageCase) -> None:
        stage, spec = stage_case.stage, stage_case.spec
        assert isinstance(stage.input, (Noise, Label, Image)), f"{stage!r}: input must be Noise, Label or Image"
        assert stage.outputs, f"{stage!r} declares no outputs"
        for out in stage.outputs:
            assert isinstance(out, (Label, Image)), f"{stage!r}: outputs must be Label or Image, got {out}"
            if isinstance(out, Label):
                assert (out.classes, out.encoding) == (spec.classes, spec.encoding), (
                    f"{stage!r}: output {out} must carry the dataset's classes {spec.classes} ({spec.encoding})"
                )
            else:
                assert out.channels == spec.channels, f"{stage!r}: output {out} must have the dataset's {spec.channels} channels"

    def test_fit_respects_step_budget(self, stage_case: StageCase) -> None:
        summary = stage_case.summary
        assert isinstance(summary, dict), f"fit() must return a dict of summary figures, got {type(summary).__name__}"
        json.dumps(summary)  # the runner writes it into stage.json
        if stage_case.reported_steps:
            assert max(stage_case.reported_steps) <= self.fit_steps, f"trained {max(stage_case.reported_steps)} steps on a budget of {self.fit_steps}"
        if "steps" in summary:
            assert summary["steps"] <= self.fit_steps, f"summary says {summary['steps']} steps on a budget of {self.fit_steps}"

    def test_fit_respects_time_budget(self, stage_case: StageCase, tmp_path: Path) -> None:
        budget = Budget(seconds=self.fit_seconds)
        # the budget, plus setup and the step that overran it: a two-step fit of the same stage
        # bounds both, measured on this machine now (the slack absorbs load from other processes)
        allowed = self.fit_seconds + 2 * stage_case.fit_seconds + 5.0
        start = time.monotonic()

        def guard(step: int, total: int | None, last: dict[str, float]) -> None:
            if time.monotonic() - start > 3 * allowed:
                raise BudgetOverrun(f"{stage_case.name} still training at step {step} after {3 * allowed:.1f} s on a {budget} budget")

        ctx = FitContext(out_dir=tmp_path, show_progress=False, progress=guard)
        stage_case.fresh_stage().fit(stage_case.pairs, budget, ctx)
        elapsed = time.monotonic() - start
        assert elapsed <= allowed, f"fit took {elapsed:.2f} s on a {budget} budget (allowed {allowed:.2f} s)"

    def test_generate_matches_declared_modalities(self, stage_case: StageCase) -> None:
        rng = BatchRNG.for_indices(0, range(self.batch))
        check_outputs(stage_case.stage.generate(self.inputs(stage_case), rng), stage_case.stage, self.batch)

    def test_generate_is_deterministic(self, stage_case: StageCase) -> None:
        x = self.inputs(stage_case)
        first = check_outputs(stage_case.stage.generate(x, BatchRNG.for_indices(7, range(self.batch))), stage_case.stage, self.batch)
        again = check_outputs(stage_case.stage.generate(x, BatchRNG.for_indices(7, range(self.batch))), stage_case.stage, self.batch)
        for a, b in zip(first, again):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m: f"same inputs and seeds gave different outputs: {m}")

    def test_row_depends_only_on_its_input_and_stream(self, stage_case: StageCase) -> None:
        """Sample *i* must not depend on which batch or shard it lands in."""
        x = self.inputs(stage_case)
        last = self.batch - 1
        full = check_outputs(stage_case.stage.generate(x, BatchRNG.for_indices(3, range(self.batch))), stage_case.stage, self.batch)
        alone_x = None if x is None else x[last:]
        alone = check_outputs(stage_case.stage.generate(alone_x, BatchRNG.for_indices(3, [last])), stage_case.stage, 1)
        for a, b in zip(full, alone):
            torch.testing.assert_close(a[last:], b, rtol=0, atol=1e-5, msg=lambda m: f"row {last} changed when generated alone: {m}")

    def test_state_dict_round_trip(self, stage_case: StageCase) -> None:
        """Weights saved with safetensors (as the runner does) restore a stage that generates the same samples."""
        from safetensors.torch import load, save

        state = stage_case.stage.state_dict()
        assert isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()), (
            "state_dict() must map names to tensors"
        )
        blob = save({k: v.detach().contiguous().cpu() for k, v in state.items()})
        restored = stage_case.fresh_stage()
        restored.load_state_dict(load(blob))
        assert isinstance(restored.to("cpu"), Stage), "Stage.to() must return the stage"
        x = self.inputs(stage_case)
        before = stage_case.stage.generate(x, BatchRNG.for_indices(11, range(self.batch)))
        after = restored.generate(x, BatchRNG.for_indices(11, range(self.batch)))
        for a, b in zip(check_outputs(before, stage_case.stage, self.batch), check_outputs(after, restored, self.batch)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=lambda m: f"the restored stage generates different samples: {m}")
