"""Training steps/s and DDIM sampling pairs/s of the diffusion translator (MONAI DiffusionModelUNet) per size.

The stage is trained through its own ``fit`` (the shared trainer, as a pipeline runs it) on
synthetic blob label maps and grey images; a step's time is the gap between two of the
trainer's progress callbacks, so the sample grid and checkpoint written after the last step
are not counted, and the first ``--warmup`` steps are dropped. Sampling times ``generate``
on a batch of label maps (``--sample-steps`` DDIM steps each). FLOPs of one U-Net pass are
counted on the meta device. The defaults are the configuration of
``pipelines/xray-diffusion.yaml``'s quick profile (width 16, 4 levels, batch 4, 10 DDIM steps).

    python benchmarks/diffusion_speed.py --sizes 32 64 128 --steps 20 --threads 2 --json diffusion.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from msaug import Budget, DataSpec, FitContext, Pairs
from msaug.rng import BatchRNG
from msaug.train.device import resolve_device
from msaug.train.diffusion import DiffusionTranslatorStage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_overhead import synthetic  # noqa: E402  (the same disc maps and images as the GAN benchmark)

CLASSES = ("background", "organ", "lesion")


def forward_gflops(stage: DiffusionTranslatorStage) -> float:
    """GFLOPs of one U-Net pass on one sample (counted on the meta device: no arithmetic)."""
    with torch.device("meta"):
        network = stage.build_generator()
        x = torch.zeros(1, stage.denoised_channels + stage.condition_channels(), stage.size, stage.size)
        with FlopCounterMode(display=False) as counter:
            network(x, torch.zeros(1, dtype=torch.long))
    return counter.get_total_flops() / 1e9


def measure(size: int, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    spec = DataSpec(CLASSES, "index", 1, size)
    params = {
        "width": args.width, "levels": args.levels, "attention_levels": args.attention_levels,
        "batch_size": args.batch_size, "sample_steps": args.sample_steps,
        "log_every": 10**6, "sample_every": 10**6, "checkpoint_every": 10**6,
    }
    stage = DiffusionTranslatorStage(params, spec)
    labels, images = synthetic(args.cases, size)
    pairs = Pairs(spec.label, spec.image, labels, images)
    stamps: dict[int, float] = {}

    def progress(step: int, total: int | None, last: dict[str, float]) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        stamps[step] = time.perf_counter()

    warmup = max(1, args.warmup)  # the first timed gap starts at a callback
    with tempfile.TemporaryDirectory() as out:
        ctx = FitContext(Path(out), device=device, show_progress=False, progress=progress)
        stage.fit(pairs, Budget(steps=warmup + args.steps + 1), ctx)  # + 1: the last step also writes a grid and a checkpoint
    gaps = [stamps[s] - stamps[s - 1] for s in range(warmup + 1, warmup + args.steps + 1)]
    step_seconds = statistics.median(gaps)
    stage.to(device)
    batch = labels[: args.sample_batch]
    stage.generate(batch, BatchRNG.for_indices(0, range(len(batch))))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    stage.generate(batch, BatchRNG.for_indices(1, range(len(batch))))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    sample_seconds = time.perf_counter() - start
    return {
        "size": size,
        "parameters": sum(p.numel() for p in stage.generator.parameters()),
        "gflops_per_unet_pass": round(forward_gflops(stage), 3),
        "train_steps_per_second": round(1 / step_seconds, 3),
        "train_images_per_second": round(args.batch_size / step_seconds, 3),
        "sample_pairs_per_second": round(len(batch) / sample_seconds, 3),
        "timed_steps": len(gaps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per size")
    ap.add_argument("--warmup", type=int, default=3, help="training steps not timed (at least 1)")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--attention-levels", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--sample-batch", type=int, default=8, help="label maps per timed generate call")
    ap.add_argument("--cases", type=int, default=16, help="synthetic training cases")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = {k: getattr(args, k) for k in ("width", "levels", "attention_levels", "batch_size", "sample_steps")}
    results = [measure(size, args, device) for size in args.sizes]
    summary = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__, "config": config, "results": results}
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
