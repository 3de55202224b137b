"""Trainer behaviour that is not family-specific: roll-back on NaN, budgets, devices, registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from msaug import Budget, DataSpec, FitContext, MsaugError, Noise, Pairs
from msaug.errors import ConfigError
from msaug.plugins import StageRegistry
from msaug.train.device import autocast_dtype, resolve_device
from msaug.train.stages import LabelGeneratorStage
from msaug.train.trainer import MAX_ROLLBACKS, TrainingDivergedError

from .conftest import QUICK


class FlakyGenerator(LabelGeneratorStage):
    """Produces NaN fakes on chosen calls of make_fake (the D step's calls are odd-numbered)."""

    nan_calls: set[int] = set()
    always_nan = False

    def make_fake(self, generator, inputs, n):  # type: ignore[override]
        self.calls = getattr(self, "calls", 0) + 1
        fake = super().make_fake(generator, inputs, n)
        if self.always_nan or self.calls in self.nan_calls:
            fake = fake * float("nan")
        return fake


def test_nan_rolls_back_to_last_good_checkpoint_and_says_so(spec: DataSpec, labels: torch.Tensor, tmp_path: Path, capsys) -> None:
    stage = FlakyGenerator({**QUICK, "checkpoint_every": 5}, spec)
    stage.nan_calls = {2 * 7 + 1}  # the discriminator step of step 8
    summary = stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=12), FitContext(tmp_path, show_progress=False))
    assert summary["rollbacks"] == 1 and summary["steps"] == 12
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    event = next(r for r in rows if r.get("event") == "rollback")
    assert event["step"] == 5 and event["failed_step"] == 10 and "d_loss" in event["reason"]
    assert "rolled back to step 5" in capsys.readouterr().err
    assert all(torch.isfinite(p).all() for p in stage.generator.parameters())
    lr = stage.trainer.opt_g.param_groups[0]["lr"]
    assert lr == pytest.approx(QUICK.get("lr", 2e-4) / 2)


def test_training_that_keeps_diverging_stops_with_a_clear_error(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    stage = FlakyGenerator(QUICK, spec)
    stage.always_nan = True
    with pytest.raises(TrainingDivergedError, match=f"after {MAX_ROLLBACKS} roll-backs; lower 'lr'") as info:
        stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=40), FitContext(tmp_path, show_progress=False))
    assert isinstance(info.value, MsaugError)


def test_seconds_budget_stops_training(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    stage = LabelGeneratorStage(QUICK, spec)
    summary = stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(seconds=1.0), FitContext(tmp_path, show_progress=False))
    assert summary["steps"] >= 1 and summary["seconds"] >= 1.0
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == summary["steps"]


def test_unbounded_budget_is_refused(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    with pytest.raises(MsaugError, match="needs a budget"):
        LabelGeneratorStage(QUICK, spec).fit(Pairs(Noise(128), spec.label, None, labels), Budget(), FitContext(tmp_path))


def test_progress_callback_and_bar(spec: DataSpec, labels: torch.Tensor, tmp_path: Path, capsys) -> None:
    seen = []
    ctx = FitContext(tmp_path, show_progress=True, progress=lambda step, total, stats: seen.append((step, total)))
    LabelGeneratorStage(QUICK, spec).fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=3), ctx)
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_wrong_training_shapes_are_data_errors(spec: DataSpec, tmp_path: Path) -> None:
    wrong = torch.zeros(4, 3, 8, 8)
    with pytest.raises(MsaugError, match=r"should be Label\(3 classes, 16 px, index\)"):
        LabelGeneratorStage(QUICK, spec).fit(Pairs(Noise(128), spec.label, None, wrong), Budget(steps=1), FitContext(tmp_path))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="valid: auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda")
    assert autocast_dtype(torch.device("cpu"), True) is None


def test_engine_plugin_registers_the_four_families(spec: DataSpec) -> None:
    from msaug.builtin.engine_stages import msaug_register_stages

    registry = StageRegistry()
    msaug_register_stages(register=registry)
    assert registry.names() == ["gan.joint", "gan.label_generator", "gan.label_upscaler", "gan.translator"]
    shown = {name: (str(cls(None, spec).input), [str(o) for o in cls(None, spec).outputs]) for name, cls in
             ((n, registry.get(n)) for n in registry.names())}
    assert shown["gan.label_generator"] == ("Noise(128)", ["Label(3 classes, 16 px, index)"])
    assert shown["gan.label_upscaler"] == ("Label(3 classes, 4 px, index)", ["Label(3 classes, 16 px, index)"])
    assert shown["gan.translator"] == ("Label(3 classes, 16 px, index)", ["Image(1 ch, 16 px)"])
    assert shown["gan.joint"] == ("Noise(128)", ["Image(1 ch, 16 px)", "Label(3 classes, 16 px, index)"])
    assert all(registry.entry(n).description for n in registry.names())


def test_training_flops_are_counted_per_step_kind_and_cover_every_step(spec: DataSpec, labels: torch.Tensor, tmp_path: Path) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    stage = LabelGeneratorStage({**QUICK, "r1_gamma": 1.0, "r1_every": 4}, spec)
    summary = stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=6), FitContext(tmp_path, show_progress=False))
    trainer = stage.trainer
    counted = {}
    for step in (0, 1):  # step 0 runs the lazy R1 penalty, step 1 does not
        trainer.state.step = step
        with FlopCounterMode(display=False) as mode:
            trainer.train_step(*trainer.sample_batch())
        counted[step] = mode.get_total_flops()
    assert counted[0] > counted[1] > 0
    # steps 0 and 4 run R1, the other four do not
    assert summary["train_flops"] == 2 * counted[0] + 4 * counted[1]
    assert summary["flops_per_step"] == counted[1]


def test_counting_flops_leaves_the_trained_weights_unchanged(spec: DataSpec, labels: torch.Tensor, tmp_path: Path, monkeypatch) -> None:
    from msaug.train.trainer import Trainer

    def fit(folder: Path) -> tuple[dict, dict[str, torch.Tensor], torch.Tensor]:
        stage = LabelGeneratorStage(QUICK, spec)
        summary = stage.fit(Pairs(Noise(128), spec.label, None, labels), Budget(steps=3), FitContext(folder, show_progress=False))
        weights = {f"g.{k}": v.clone() for k, v in stage.generator.state_dict().items()}
        weights.update({f"d.{k}": v.clone() for k, v in stage.trainer.D.state_dict().items()})
        weights.update({f"opt.{i}": v["exp_avg"].clone() for i, v in stage.trainer.opt_g.state.items()})
        return summary, weights, torch.get_rng_state()

    counted_summary, counted, counted_rng = fit(tmp_path / "counted")
    monkeypatch.setattr(Trainer, "_count_flops", lambda self: None)
    plain_summary, plain, plain_rng = fit(tmp_path / "plain")
    assert counted_summary["train_flops"] > 0 and plain_summary["train_flops"] is None
    assert counted_summary["steps"] == plain_summary["steps"] == 3
    assert counted.keys() == plain.keys()
    assert all(torch.equal(counted[k], plain[k]) for k in counted)
    assert torch.equal(counted_rng, plain_rng)  # the random stream goes on as if nothing had been counted
