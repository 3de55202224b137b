"""Framework overhead of the shared GAN trainer, steps/s and generation images/s per family.

For each family the same networks (same initial weights) are trained side by side:

* **trainer**: ``GanTrainer.fit`` as stages use it (metrics every 10 steps, one sample
  grid and one checkpoint per round, progress bar off);
* **bare**: a hand-written PyTorch loop doing the same maths (DiffAugment, D step, lazy R1,
  G step with feature matching where the family uses it, EMA update) and nothing else.

Rounds alternate bare/trainer so load changes on a shared machine hit both alike; the
report gives the median seconds per step of each and their ratio (target <= 1.15). On CUDA
both sides use the trainer's bf16 autocast and ``channels_last`` and are timed after a
synchronize (``benchmarks/gpu_check.py`` reuses these functions there).

    python benchmarks/engine_overhead.py --sizes 32 64 --steps 10 --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from msaug import Budget, DataSpec, FitContext, MsaugError, Noise, Pairs
from msaug.nn import diff_augment, discriminator_loss, feature_matching_loss, generator_loss, r1_penalty
from msaug.resize import resize_label
from msaug.rng import BatchRNG
from msaug.train.device import resolve_device
from msaug.train.stages import JointStage, LabelGeneratorStage, LabelUpscalerStage, TranslatorStage
from msaug.train.trainer import GanSetup, GanTrainer, TrainSettings

FAMILIES = {
    "label_generator": LabelGeneratorStage,
    "label_upscaler": LabelUpscalerStage,
    "translator": TranslatorStage,
    "joint": JointStage,
}


def synthetic(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blob label maps (3 classes) and grey images derived from them."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    idx = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        cx, cy, r = (torch.rand(3, generator=g) * torch.tensor([0.6, 0.6, 0.3]) + torch.tensor([-0.3, -0.3, 0.3])).tolist()
        idx[i][(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = 1
        idx[i][(xx - cx) ** 2 + (yy - cy) ** 2 < (r / 2) ** 2] = 2
    labels = F.one_hot(idx, 3).permute(0, 3, 1, 2).float()
    images = (labels * torch.tensor([0.1, 0.6, 0.9]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return labels, images


def pairs_for(family: str, spec: DataSpec, labels: torch.Tensor, images: torch.Tensor) -> Pairs:
    if family == "label_generator":
        return Pairs(Noise(128), spec.label, None, labels)
    if family == "label_upscaler":
        return Pairs(spec.label.at(spec.size // 4), spec.label, resize_label(labels, spec.size // 4, "index"), labels)
    if family == "translator":
        return Pairs(spec.label, spec.image, labels, images)
    return Pairs(Noise(128), (spec.image, spec.label), None, (images, labels))


def build(stage, pairs: Pairs, steps: int, out: Path, device: str | torch.device = "cpu") -> GanTrainer:
    """A trainer exactly as ``GanStage.fit`` builds it (on ``device``)."""
    p = stage.params
    inputs, targets = stage.training_tensors(pairs)
    torch.manual_seed(0)
    setup = GanSetup(
        stage.build_generator(), stage.build_discriminator(), stage.make_fake, stage._preview_hard,
        stage.condition if stage.conditional else None, stage.color_channels,
    )
    settings = TrainSettings(
        lr=p.lr, batch_size=p.batch_size, ema=p.ema, amp=p.amp, loss=p.loss, r1_gamma=p.r1_gamma, r1_every=p.r1_every,
        feature_matching=stage.feature_matching_weight(), augment=tuple(a for a in p.augment.split(",") if a),
        log_every=10, sample_every=steps, checkpoint_every=steps,
    )
    ctx = FitContext(out, device=torch.device(device), resume=False, show_progress=False)
    return GanTrainer(setup, settings, inputs, targets, ctx)


def bare_loop(t: GanTrainer, steps: int) -> None:
    """The same training maths as GanTrainer.train_step, written as a plain PyTorch loop.

    With the trainer's precision: bf16 autocast around the forward passes where the trainer
    uses it (CUDA), none on CPU; the tensors are already in its memory format.
    """
    s, G, D, setup = t.settings, t.G, t.D, t.setup

    def autocast():
        if t.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(t.device.type, dtype=t.amp_dtype)

    ema = copy.deepcopy(G).requires_grad_(False)
    ema_params, params = list(ema.parameters()), list(G.parameters())
    opt_g = torch.optim.Adam(G.parameters(), lr=s.lr, betas=s.betas, fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=s.lr, betas=s.betas, fused=True)

    def d_in(real, fake, cond):
        parts = [x for x in (real, fake) if x is not None]
        cols = [setup.color_channels] * len(parts)
        if cond is not None and setup.condition is not None:
            parts, cols = parts + [setup.condition(cond)], cols + [0]
        parts = diff_augment(parts, s.augment, cols)
        if cond is not None and setup.condition is not None:
            return [torch.cat([x, parts[-1]], 1) for x in parts[:-1]]
        return parts

    for step in range(steps):
        idx = torch.randint(len(t.targets), (s.batch_size,)).to(t.device)
        real = t.targets[idx]
        cond = None if t.inputs is None else t.inputs[idx]
        n = real.shape[0]
        opt_d.zero_grad(set_to_none=True)
        with autocast():
            with torch.no_grad():
                fake = setup.make_fake(G, cond, n)
            r_in, f_in = d_in(real, fake, cond)
            scores = D(torch.cat([r_in, f_in]))
            loss = discriminator_loss(s.loss, [[x[:n] for x in sc] for sc in scores], [[x[n:] for x in sc] for sc in scores])
        loss.backward()
        opt_d.step()
        if s.r1_gamma > 0 and step % s.r1_every == 0:
            opt_d.zero_grad(set_to_none=True)
            r = real.detach().requires_grad_(True)
            (r1_penalty(D(d_in(r, None, cond)[0]), r) * (s.r1_gamma / 2 * s.r1_every)).backward()
            opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        D.requires_grad_(False)
        with autocast():
            fake = setup.make_fake(G, cond, n)
            if s.feature_matching > 0:
                r_in, f_in = d_in(real, fake, cond)
            else:
                (f_in,) = d_in(None, fake, cond)
            fake_scores = D(f_in)
            loss = generator_loss(s.loss, fake_scores)
            if s.feature_matching > 0:
                with torch.no_grad():
                    real_scores = D(r_in)
                loss = loss + s.feature_matching * feature_matching_loss(real_scores, fake_scores)
        loss.backward()
        D.requires_grad_(True)
        opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - min(s.ema, (1 + step) / (10 + step)))


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def family_setup(family: str, size: int, params: dict) -> tuple:
    """``(stage, pairs)``: one family's stage with ``params`` and its pairs from :func:`synthetic`."""
    spec = DataSpec(("background", "organ", "core"), "index", 1, size)
    labels, images = synthetic(16, size)
    return FAMILIES[family](params, spec), pairs_for(family, spec, labels, images)


def time_round(stage, pairs: Pairs, steps: int, out: Path, device: torch.device) -> tuple[float, float, GanTrainer]:
    """One round: ``(bare seconds per step, trainer seconds per step, the trainer)``, bare first."""
    t = build(stage, pairs, steps, out / "bare", device)
    synchronize(device)
    start = time.perf_counter()
    bare_loop(t, steps)
    synchronize(device)
    bare = (time.perf_counter() - start) / steps
    t = build(stage, pairs, steps, out / "trainer", device)
    synchronize(device)
    start = time.perf_counter()
    t.fit(Budget(steps=steps))
    synchronize(device)
    return bare, (time.perf_counter() - start) / steps, t


def measure(family: str, size: int, steps: int, rounds: int, batch: int, device: str | torch.device = "cpu") -> dict:
    dev = torch.device(device)
    stage, pairs = family_setup(family, size, {"batch_size": batch})
    bare, framed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            b, f, t = time_round(stage, pairs, steps, Path(tmp) / f"r{r}", dev)
            bare.append(b)
            framed.append(f)
        stage.generator = t.ema.module.eval()
        stage.device = dev
        gen_batch = 16
        x = None if pairs.inputs is None else pairs.inputs[:1].repeat(gen_batch, 1, 1, 1).to(dev)
        times = []
        for r in range(3):
            start = time.perf_counter()
            stage.generate(x, BatchRNG.for_indices(0, range(r * gen_batch, (r + 1) * gen_batch)))
            synchronize(dev)
            times.append(time.perf_counter() - start)
    b, f = statistics.median(bare), statistics.median(framed)
    return {
        "family": family, "size": size, "batch": batch, "steps_per_round": steps, "rounds": rounds,
        "bare_s_per_step": round(b, 4), "trainer_s_per_step": round(f, 4), "ratio": round(f / b, 3),
        "trainer_steps_per_s": round(1 / f, 3), "generate_images_per_s": round(gen_batch / statistics.median(times), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()
    try:
        device = resolve_device(args.device)
    except MsaugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        for family in args.families:
            print(json.dumps(measure(family, size, args.steps, args.rounds, args.batch, device)), flush=True)


if __name__ == "__main__":
    main()
