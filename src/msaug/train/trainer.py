"""The one training loop shared by every trainable family (GAN and diffusion).

:class:`Trainer` is the loop: the generator and its EMA, the generator's optimiser,
gradient accumulation, bf16 autocast on CUDA, ``channels_last``, DDP, budgets in steps or
seconds, metrics.jsonl, sample grids, atomic resumable checkpoints and roll-back to the
last good checkpoint when the losses go NaN or diverge. A subclass adds the update itself
(:meth:`Trainer.train_step`) and any further networks and optimisers it needs.

A GAN family describes itself as a :class:`GanSetup` (networks, how to make a fake batch,
how to condition the discriminator, how to draw a preview) and :class:`GanTrainer`
alternates discriminator/generator steps with DiffAugment, lazy R1 and optional feature
matching. A diffusion family describes itself as a :class:`DiffusionSetup` (the denoiser,
its loss on a real batch, a preview) and :class:`DiffusionTrainer` minimises that loss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from msaug.errors import CheckpointError, MsaugError
from msaug.io import append_lines
from msaug.nn.augment import diff_augment
from msaug.nn.discriminators import Features
from msaug.nn.ema import ema_model
from msaug.nn.losses import LossKind, discriminator_loss, feature_matching_loss, generator_loss, r1_penalty
from msaug.progress import escape
from msaug.stage import Budget, FitContext
from msaug.train import distributed
from msaug.train.checkpoint import (
    load_checkpoint,
    load_module,
    load_optimizer,
    module_tensors,
    optimizer_state,
    save_checkpoint,
)
from msaug.train.device import autocast_dtype, use_channels_last
from msaug.train.flops import StepFlops
from msaug.train.preview import save_grid

log = logging.getLogger(__name__)

#: a loss whose magnitude exceeds this is treated as divergence, like a NaN
DIVERGENCE_LIMIT = 1e4
#: roll-backs allowed before the stage gives up
MAX_ROLLBACKS = 3


class TrainingDivergedError(MsaugError):
    """Training kept producing NaN or diverging losses even after rolling back."""


@dataclass
class GanSetup:
    """What one GAN family plugs into :class:`GanTrainer`.

    ``make_fake(generator, condition, n)`` returns a generated batch in the discriminator's
    domain ([-1, 1], soft label probabilities), drawing its noise from torch's global RNG.
    ``condition(inputs)`` turns a batch of stage inputs into the map concatenated to the
    discriminator input (``None`` for unconditional families). ``preview(generator,
    inputs, targets)`` returns rows of RGB tiles for the sample grid.
    """

    generator: nn.Module
    discriminator: nn.Module
    make_fake: Callable[[nn.Module, torch.Tensor | None, int], torch.Tensor]
    preview: Callable[[nn.Module, torch.Tensor | None, torch.Tensor], list[torch.Tensor]]
    condition: Callable[[torch.Tensor], torch.Tensor] | None = None
    #: leading target channels that are image channels (colour augmentation applies to them only)
    color_channels: int = 0


@dataclass
class DiffusionSetup:
    """What one diffusion family plugs into :class:`DiffusionTrainer`.

    ``generator`` is the denoising network; ``loss(network, targets, inputs)`` returns the scalar denoising loss on a real batch
    (targets in [-1, 1], ``inputs`` the stage inputs or ``None``), drawing its noise and
    timesteps from torch's global RNG. ``preview`` is as in :class:`GanSetup`.
    """

    generator: nn.Module
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor]
    preview: Callable[[nn.Module, torch.Tensor | None, torch.Tensor], list[torch.Tensor]]


@dataclass
class TrainSettings:
    """The trainer-facing subset of a stage's params."""

    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    ema: float = 0.999
    amp: bool = True
    loss: LossKind = "nonsaturating"
    r1_gamma: float = 1.0
    r1_every: int = 4
    feature_matching: float = 0.0
    augment: tuple[str, ...] = ("translation", "cutout")
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    betas: tuple[float, float] = (0.0, 0.99)


@dataclass
class _Snapshot:
    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


@dataclass
class _State:
    step: int = 0
    elapsed: float = 0.0
    rollbacks: int = 0
    lr_scale: float = 1.0
    last: dict[str, float] = field(default_factory=dict)


def _adam(module: nn.Module, settings: TrainSettings) -> torch.optim.Adam:
    """Adam with the fused kernel (about 10x faster than the per-tensor loop on CPU)."""
    try:
        return torch.optim.Adam(module.parameters(), lr=settings.lr, betas=settings.betas, fused=True)
    except (RuntimeError, TypeError):  # devices without a fused kernel
        return torch.optim.Adam(module.parameters(), lr=settings.lr, betas=settings.betas)


class Trainer:
    """The training loop over in-memory tensors (``inputs`` may be ``None``); subclasses define :meth:`train_step`.

    ``setup.generator`` is the network the stage samples with (its EMA copy is kept here);
    ``setup.preview(ema_generator, inputs, targets)`` draws the sample grid's rows. Subclasses
    build any further networks in :meth:`build`.
    """

    def __init__(
        self,
        setup: GanSetup | DiffusionSetup,
        settings: TrainSettings,
        inputs: torch.Tensor | None,
        targets: torch.Tensor,
        ctx: FitContext,
    ):
        self.setup, self.settings, self.ctx = setup, settings, ctx
        self.device = torch.device(ctx.device)
        self.out_dir = Path(ctx.out_dir)
        self.main = distributed.is_main()
        self.amp_dtype = autocast_dtype(self.device, settings.amp)
        self.memory_format = torch.channels_last if use_channels_last(self.device) else torch.contiguous_format
        fmt = self.memory_format
        self.inputs = None if inputs is None else inputs.to(self.device).contiguous(memory_format=fmt)
        self.targets = targets.to(self.device).contiguous(memory_format=fmt)
        self.G = setup.generator.to(self.device, memory_format=fmt)
        self.opt_g = _adam(self.G, settings)
        self.G_train: nn.Module = self._parallel(self.G)
        self.ema = ema_model(self.G, settings.ema)  # after DDP's broadcast: identical on every rank
        self.sampler = torch.Generator().manual_seed(ctx.seed * 1009 + distributed.rank())
        self.state = _State()
        self.flops = StepFlops(period=self.flop_period(), ranks=distributed.world_size())
        self._preview_count = min(8, len(self.targets))
        self.build()

    def build(self) -> None:
        """Build what the subclass trains besides the generator (called at the end of ``__init__``)."""

    def flop_period(self) -> int:
        """Every how many steps a step does extra work (``0``: every step alike); :class:`StepFlops` counts one of each kind."""
        return 0

    def _parallel(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped for DistributedDataParallel when training runs on several processes."""
        if not distributed.is_distributed():
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def modules(self) -> dict[str, nn.Module]:
        """The networks a checkpoint holds, by prefix."""
        return {"generator": self.G, "ema": self.ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers a checkpoint holds (and a roll-back slows down), by prefix."""
        return {"opt_g": self.opt_g}

    def train_step(self, real: torch.Tensor, cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One update on a batch of targets (and their inputs); returns the detached losses by name."""
        raise NotImplementedError

    # ------------------------------------------------------------------ steps
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _micro(self, real: torch.Tensor, cond: torch.Tensor | None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        n = self.settings.grad_accum
        reals = real.chunk(n)
        conds = cond.chunk(n) if cond is not None else [None] * len(reals)
        for i, (r, c) in enumerate(zip(reals, conds)):
            yield i, r, c

    def _no_sync(self, module: nn.Module, last: bool) -> contextlib.AbstractContextManager[Any]:
        if isinstance(module, DistributedDataParallel) and not last:
            return module.no_sync()
        return contextlib.nullcontext()

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(self.targets), (self.settings.batch_size,), generator=self.sampler).to(self.device)
        return self.targets[idx], None if self.inputs is None else self.inputs[idx]

    # ------------------------------------------------------------ checkpoints
    def _collect(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in self.modules().items():
            tensors.update(module_tensors(prefix, module))
        rests: dict[str, Any] = {}
        for prefix, optimizer in self.optimizers().items():
            found, rests[prefix] = optimizer_state(prefix, optimizer)
            tensors.update(found)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.sampler"] = self.sampler.get_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            "step": self.state.step,
            "elapsed": self.state.elapsed,
            "rollbacks": self.state.rollbacks,
            "lr_scale": self.state.lr_scale,
            "last": self.state.last,
            **rests,
        }
        return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in tensors.items()}, meta

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for prefix, module in self.modules().items():
            load_module(prefix, module, tensors)
        for prefix, optimizer in self.optimizers().items():
            if prefix not in meta:
                raise CheckpointError(f"{self.out_dir / 'checkpoint'}: no optimizer {prefix!r} in the checkpoint (was the stage's family changed?)")
            load_optimizer(prefix, optimizer, tensors, meta[prefix])
        torch.set_rng_state(tensors["rng.torch"])
        self.sampler.set_state(tensors["rng.sampler"])
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.state = _State(
            step=int(meta["step"]),
            elapsed=float(meta["elapsed"]),
            rollbacks=int(meta.get("rollbacks", 0)),
            lr_scale=float(meta.get("lr_scale", 1.0)),
            last=dict(meta.get("last", {})),
        )

    def _checkpoint(self) -> _Snapshot:
        tensors, meta = self._collect()
        if self.main:
            save_checkpoint(self.out_dir / "checkpoint", tensors, meta)
        return _Snapshot(self.state.step, tensors, meta)

    # -------------------------------------------------------------- logging
    def _metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _trim_metrics(self, step: int) -> None:
        """On resume, keep only the metrics lines up to the checkpoint's step (and drop a torn last line)."""
        path = self._metrics_path()
        if not self.main or not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(row.get("step", 0)) <= step:
                kept.append(line)
        from msaug.io import atomic_write

        atomic_write(path, "".join(k + "\n" for k in kept))

    def _write_metrics(self, row: dict[str, Any]) -> None:
        if self.main:
            append_lines(self._metrics_path(), [json.dumps(row) + "\n"])

    def _sample_grid(self) -> None:
        if not self.main:
            return
        n = self._preview_count
        inputs = None if self.inputs is None else self.inputs[:n]
        with torch.no_grad(), torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.ctx.seed)
            rows = self.setup.preview(self.ema.module, inputs, self.targets[:n])
        save_grid(self.out_dir / "samples" / f"step_{self.state.step:06d}.png", rows)

    # ------------------------------------------------------------------ loop
    def _set_lr(self) -> None:
        for opt in self.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = self.settings.lr * self.state.lr_scale

    def _rollback(self, snapshot: _Snapshot, reason: str) -> None:
        failed_at = self.state.step
        rollbacks = self.state.rollbacks + 1
        if rollbacks > MAX_ROLLBACKS:
            raise TrainingDivergedError(
                f"{self.out_dir}: training diverged ({reason}) at step {failed_at} after {MAX_ROLLBACKS} roll-backs; "
                f"lower 'lr' or raise 'r1_gamma' in the stage's params"
            )
        self._restore(snapshot.tensors, snapshot.meta)
        self.state.rollbacks = rollbacks
        self.state.lr_scale *= 0.5
        self._set_lr()
        torch.manual_seed(self.ctx.seed * 7919 + rollbacks * 104729 + distributed.rank())  # do not replay the same noise
        msg = (
            f"{self.out_dir.name}: {reason} at step {failed_at}; rolled back to step {snapshot.step} "
            f"and halved the learning rate (roll-back {rollbacks} of at most {MAX_ROLLBACKS})"
        )
        log.warning(msg)
        if self.main:
            self.ctx.reporter.warning(msg)
        self._write_metrics({"step": snapshot.step, "event": "rollback", "failed_step": failed_at, "reason": reason})

    def fit(self, budget: Budget) -> dict[str, Any]:
        """Train until ``budget`` is exhausted, resuming from ``out_dir/checkpoint`` when allowed."""
        if budget.steps is None and budget.seconds is None:
            raise MsaugError(f"{self.out_dir}: a trainable stage needs a budget (steps and/or seconds)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed_from = None
        found = load_checkpoint(self.out_dir / "checkpoint") if self.ctx.resume else None
        if found is not None:
            self._restore(*found)
            self._set_lr()
            resumed_from = self.state.step
        elif self.main and self._metrics_path().exists():
            self._metrics_path().unlink()
        self._trim_metrics(self.state.step)
        good = _Snapshot(self.state.step, *self._collect())
        s = self.settings
        images = s.batch_size * distributed.world_size()
        t0 = time.monotonic() - self.state.elapsed
        window_start, window_steps = time.monotonic(), 0
        acc: dict[str, torch.Tensor] = {}
        with self._progress(budget) as advance:
            while not self._stop(budget, time.monotonic() - t0):
                real, cond = self.sample_batch()
                losses = self.train_step(real, cond)
                self.state.step += 1
                window_steps += 1
                for k, v in losses.items():
                    acc[k] = acc.get(k, torch.zeros((), device=self.device)) + v.float()
                step = self.state.step
                final = self._stop(budget, time.monotonic() - t0)
                due_ckpt = step % s.checkpoint_every == 0 or final
                if step % s.log_every == 0 or due_ckpt:
                    names = sorted(acc)
                    values = distributed.all_reduce_mean(torch.stack([acc[k] for k in names]) / window_steps).tolist()
                    acc.clear()
                    bad = next((f"{k} = {v}" for k, v in zip(names, values) if not math.isfinite(v) or abs(v) > DIVERGENCE_LIMIT), None)
                    if bad is not None:
                        self._rollback(good, f"non-finite or diverging loss ({bad})")
                        window_start, window_steps = time.monotonic(), 0
                        continue
                    now = time.monotonic()
                    self.state.elapsed = now - t0
                    rate = window_steps * images / max(now - window_start, 1e-9)
                    self.state.last = {**dict(zip(names, values)), "images_per_second": rate}
                    self._write_metrics({"step": step, "elapsed": round(self.state.elapsed, 3), **self.state.last})
                    window_start, window_steps = now, 0
                if step % s.sample_every == 0 or final:
                    self._sample_grid()
                if due_ckpt:
                    self.state.elapsed = time.monotonic() - t0
                    good = self._checkpoint()
                advance(step, self.state.last)
        elapsed = time.monotonic() - t0
        self.state.elapsed = elapsed
        self._count_flops()
        distributed.barrier()
        return {
            "steps": self.state.step,
            "seconds": round(elapsed, 3),
            "images_per_second": round(self.state.last.get("images_per_second", 0.0), 3),
            "resumed_from": resumed_from,
            "rollbacks": self.state.rollbacks,
            "train_flops": self.flops.total(self.state.step),
            "flops_per_step": self.flops.per_step(),
            **{k: round(v, 5) for k, v in self.state.last.items() if k != "images_per_second"},
        }

    def _count_flops(self) -> None:
        """Count one training step of each kind (:class:`StepFlops`), then put everything back as it was.

        The counted steps run after training, on a fixed batch, and every weight, optimiser moment,
        random state and the step count are restored from a snapshot afterwards: counting runs
        under torch's dispatch mode, which may pick other kernels (attention, for one), so it
        must not touch the steps that train the stage.
        """
        tensors, meta = self._collect()
        index = torch.arange(self.settings.batch_size, device=self.targets.device) % len(self.targets)
        real, cond = self.targets[index], None if self.inputs is None else self.inputs[index]
        try:
            for step in self.flops.steps_to_count():
                self.state.step = step
                with self.flops.counting(step):
                    self.train_step(real, cond)
        finally:
            self._restore(tensors, meta)

    def _stop(self, budget: Budget, elapsed: float) -> bool:
        if budget.seconds is None:  # step budgets agree on every rank without communication
            return budget.exhausted(self.state.step, elapsed)
        return distributed.any_rank(budget.exhausted(self.state.step, elapsed), self.device)

    @contextlib.contextmanager
    def _progress(self, budget: Budget) -> Iterator[Callable[[int, dict[str, float]], None]]:
        callback = self.ctx.progress
        if not (self.ctx.show_progress and self.main):
            yield lambda step, last: callback(step, budget.steps, last) if callback else None
            return
        with self.ctx.reporter.task(escape(self.out_dir.name), budget.steps, completed=self.state.step, clock="elapsed", details=True) as task:

            def advance(step: int, last: dict[str, float]) -> None:
                stats = "  ".join(
                    f"{k.replace('_loss', '')} {v:.3g}" if k != "images_per_second" else f"{v:.1f} img/s"
                    for k, v in last.items()
                )
                task.update(step, details=stats)
                if callback:
                    callback(step, budget.steps, last)

            yield advance


class DiffusionTrainer(Trainer):
    """Trains one :class:`DiffusionSetup`: one optimiser step on the denoising loss per step."""

    setup: DiffusionSetup

    def train_step(self, real: torch.Tensor, cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        accum = self.settings.grad_accum
        self.opt_g.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, r, c in self._micro(real, cond):
            with self._no_sync(self.G_train, i == accum - 1), self._autocast():
                loss = self.setup.loss(self.G_train, r, c)
            (loss / accum).backward()
            total += loss.detach().float() / accum
        self.opt_g.step()
        self.ema.update_parameters(self.G)
        return {"loss": total}


class GanTrainer(Trainer):
    """Trains one :class:`GanSetup`: a discriminator update (lazy R1) and a generator update per step."""

    setup: GanSetup

    def flop_period(self) -> int:
        s = self.settings
        return s.r1_every if s.r1_gamma > 0 and s.r1_every > 0 else 0  # the lazy R1 update

    def build(self) -> None:
        self.D = self.setup.discriminator.to(self.device, memory_format=self.memory_format)
        self.opt_d = _adam(self.D, self.settings)
        self.D_train: nn.Module = self._parallel(self.D)

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "discriminator": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "opt_d": self.opt_d}

    def _d_inputs(
        self, real: torch.Tensor | None, fake: torch.Tensor | None, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Discriminator inputs for real and fake, augmented with one shared transform per row."""
        parts = [t for t in (real, fake) if t is not None]
        colors = [self.setup.color_channels] * len(parts)
        if cond is not None and self.setup.condition is not None:
            parts.append(self.setup.condition(cond).to(parts[0].dtype))
            colors.append(0)
        parts = diff_augment(parts, self.settings.augment, colors)
        c = parts[-1] if cond is not None and self.setup.condition is not None else None
        out = iter(parts)
        r = next(out) if real is not None else None
        f = next(out) if fake is not None else None
        if c is not None:
            r = None if r is None else torch.cat([r, c], dim=1)
            f = None if f is None else torch.cat([f, c], dim=1)
        return r, f

    def _split(self, scores: Features, n: int) -> tuple[Features, Features]:
        return [[t[:n] for t in s] for s in scores], [[t[n:] for t in s] for s in scores]

    def train_step(self, real: torch.Tensor, cond: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One discriminator update (plus lazy R1 when due) and one generator update."""
        s, accum = self.settings, self.settings.grad_accum
        losses: dict[str, torch.Tensor] = {}
        # discriminator
        self.opt_d.zero_grad(set_to_none=True)
        d_total = torch.zeros((), device=self.device)
        for i, r, c in self._micro(real, cond):
            with self._no_sync(self.D_train, i == accum - 1), self._autocast():
                with torch.no_grad():
                    fake = self.setup.make_fake(self.G, c, r.shape[0])
                r_in, f_in = self._d_inputs(r, fake, c)
                scores = self.D_train(torch.cat([r_in, f_in]))  # type: ignore[list-item]
                d_loss = discriminator_loss(s.loss, *self._split(scores, r.shape[0]))
            (d_loss / accum).backward()
            d_total += d_loss.detach() / accum
        self.opt_d.step()
        losses["d_loss"] = d_total
        if s.r1_gamma > 0 and s.r1_every > 0 and self.state.step % s.r1_every == 0:
            self.opt_d.zero_grad(set_to_none=True)
            r1_total = torch.zeros((), device=self.device)
            for i, r, c in self._micro(real, cond):
                with self._no_sync(self.D_train, i == accum - 1):
                    r = r.detach().requires_grad_(True)
                    r_in, _ = self._d_inputs(r, None, c)
                    scores = self.D_train(r_in)
                    penalty = r1_penalty(scores, r)
                # the zero term touches every parameter (the last bias has no input gradient), which DDP requires
                anchor = sum(sc[-1].sum() for sc in scores) * 0.0
                (penalty * (s.r1_gamma / 2 * s.r1_every / accum) + anchor).backward()
                r1_total += penalty.detach() / accum
            self.opt_d.step()
            losses["r1"] = r1_total
        # generator (the discriminator is used unwrapped and frozen: no gradient sync for it)
        self.opt_g.zero_grad(set_to_none=True)
        self.D.requires_grad_(False)
        g_total = torch.zeros((), device=self.device)
        fm_total = torch.zeros((), device=self.device)
        try:
            for i, r, c in self._micro(real, cond):
                with self._no_sync(self.G_train, i == accum - 1), self._autocast():
                    fake = self.setup.make_fake(self.G_train, c, r.shape[0])
                    r_in, f_in = self._d_inputs(r if s.feature_matching > 0 else None, fake, c)
                    fake_scores = self.D(f_in)
                    g_loss = generator_loss(s.loss, fake_scores)
                    if s.feature_matching > 0:
                        with torch.no_grad():
                            real_scores = self.D(r_in)
                        fm = feature_matching_loss(real_scores, fake_scores)
                        g_loss = g_loss + s.feature_matching * fm
                        fm_total += fm.detach() / accum
                (g_loss / accum).backward()
                g_total += g_loss.detach() / accum
        finally:
            self.D.requires_grad_(True)
        self.opt_g.step()
        self.ema.update_parameters(self.G)
        losses["g_loss"] = g_total
        if s.feature_matching > 0:
            losses["feature_matching"] = fm_total
        return losses
