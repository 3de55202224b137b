"""GPU check: the ``full`` profiles' stages, chains and DDP on one GPU, in one short window.

What it measures, each section within its share of ``--max-seconds`` (default 480):

* **train**: every stage of the ``full`` profiles of pipelines/xray.yaml and
  pipelines/fundus.yaml (drive.yaml's ``full`` stages are fundus.yaml's), built by msaug's
  composer at each size (256 and 512 px; stage sizes scaled as the profile has them at
  512), fitted through ``Stage.fit`` / ``GanTrainer`` (bf16 autocast and ``channels_last``
  where the trainer turns them on: CUDA) for warm-up + timed steps: steps/s and images/s
  over the timed steps, peak memory;
* **generate**: each trained chain through msaug's generation (``msaug.pipeline.generate``:
  the chain alone, and pairs written as PNG files): pairs/s;
* **bare_ratio**: seconds per step of the trainer over a bare PyTorch loop for the
  translator family, with ``benchmarks/engine_overhead.py``'s functions;
* **ddp**: with two or more CUDA devices, a 2-process ``torchrun`` (NCCL) fit of the
  translator family through the trainer's DDP path; otherwise skipped, with the reason.

A section that would run past its share is cut short (fewer steps, pairs or rounds, or
its items skipped) and marked ``cut_short`` in the output; nothing is left out silently.
Writes OUT/gpu_check.json (atomically, after every section) and OUT/gpu_check.md, and
prints the table.

    python benchmarks/gpu_check.py --out /tmp/gpu_check            # on a GPU machine
    python benchmarks/gpu_check.py --out /tmp/gpu_check_tiny --tiny  # CPU, tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_overhead  # noqa: E402  (benchmarks/ is not a package)

import msaug  # noqa: E402
from msaug.errors import ConfigError, MsaugError  # noqa: E402
from msaug.io import atomic_write, write_json  # noqa: E402
from msaug.pipeline.composer import ComposedStage  # noqa: E402
from msaug.pipeline.config import load_pipeline  # noqa: E402
from msaug.pipeline.generate import generate, run_chain  # noqa: E402
from msaug.pipeline.runner import Prepared, make_pairs, prepare, product_spec  # noqa: E402
from msaug.pipeline.validate import human_bytes  # noqa: E402
from msaug.plugins import get_registries  # noqa: E402
from msaug.stage import Budget, FitContext  # noqa: E402
from msaug.synthetic import SyntheticWriter  # noqa: E402
from msaug.train import distributed  # noqa: E402
from msaug.train.device import autocast_dtype, resolve_device, use_channels_last  # noqa: E402

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
#: chain name -> the pipeline whose ``full`` profile it is (drive.yaml's full stages are fundus.yaml's)
CHAINS = {"xray": "xray.yaml", "fundus": "fundus.yaml"}
ALSO_COVERS = {"fundus": ["drive.yaml"]}
#: share of --max-seconds per section, in running order; time a section leaves unused passes on
SHARES = {"train": 0.55, "generate": 0.15, "bare_ratio": 0.12, "ddp": 0.18}
RATIO_FAMILY = "translator"
SIZE_KEYS = ("size", "in_size", "out_size")
REPORT_JSON, REPORT_MD = "gpu_check.json", "gpu_check.md"


@dataclass(frozen=True)
class Plan:
    """Sizes and counts of one check (the GPU plan, or the tiny CPU one)."""

    tiny: bool
    sizes: tuple[int, ...]
    warmup: int
    steps: int
    data_count: int
    pairs: int
    rounds: int
    ratio_steps: int
    #: params set on every stage (tiny: narrow networks, small batches)
    stage_params: dict[str, Any] = field(default_factory=dict)
    #: an item given less than this is skipped (marked) rather than started
    min_item_seconds: float = 2.0


GPU_PLAN = Plan(False, (256, 512), warmup=5, steps=20, data_count=16, pairs=128, rounds=3, ratio_steps=10)
TINY_PLAN = Plan(True, (32, 64), warmup=1, steps=2, data_count=8, pairs=4, rounds=1, ratio_steps=2,
                 stage_params={"width": 8, "batch_size": 2}, min_item_seconds=0.0)


# ----------------------------------------------------------------------------- time guard
class Section:
    """One section's share of the overall time, and what it did with it."""

    def __init__(self, name: str, share: float):
        self.name, self.share = name, share
        self.start = time.monotonic()
        self.cut: list[str] = []

    def used(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.share - self.used()

    def per_item(self, items_left: int) -> float:
        return self.left() / max(1, items_left)

    def record(self, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        errors = [r for r in rows if r.get("status") == "error"]
        status = "error" if errors else "cut_short" if self.cut or any(r.get("status") != "ok" for r in rows) else "ok"
        out = {"status": status, "share_s": round(self.share, 1), "used_s": round(self.used(), 2), **extra, "rows": rows}
        if self.cut:
            out["cut"] = self.cut
        return out


class Guard:
    """Splits ``max_seconds`` among the sections in :data:`SHARES` order."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.start = time.monotonic()

    def left(self) -> float:
        return self.max_seconds - (time.monotonic() - self.start)

    def section(self, name: str) -> Section:
        names = list(SHARES)
        later = sum(SHARES[n] for n in names[names.index(name):])
        return Section(name, max(0.0, self.left()) * SHARES[name] / later)


# ----------------------------------------------------------------------------- measuring
def synchronize(device: torch.device) -> None:
    engine_overhead.synchronize(device)


class StepClock:
    """A trainer progress callback that reads the clock after the warm-up steps and after the last timed step."""

    def __init__(self, device: torch.device, warmup: int, last: int):
        self.device, self.warmup, self.last = device, warmup, last
        self.marks: dict[int, float] = {}
        self.final: tuple[int, float] | None = None

    def __call__(self, step: int, total: int | None, metrics: dict[str, float]) -> None:
        if step in (self.warmup, self.last):
            synchronize(self.device)
            self.marks[step] = time.perf_counter()
        self.final = (step, time.perf_counter())  # the trainer has synchronized here on its final step (logging)

    def rate(self) -> tuple[float | None, int, str]:
        """``(steps per second, timed steps, note)`` over the steps after the warm-up."""
        if self.warmup not in self.marks or self.final is None:
            return None, 0, "stopped within the warm-up steps"
        if self.last in self.marks:
            n, seconds, note = self.last - self.warmup, self.marks[self.last] - self.marks[self.warmup], ""
        else:  # cut short: up to the final step, whose checkpoint and sample grid are then included
            n, seconds = self.final[0] - self.warmup, self.final[1] - self.marks[self.warmup]
            note = "timed up to the final step (its checkpoint included)"
        if n < 1:
            return None, 0, "stopped within the warm-up steps"
        return n / max(seconds, 1e-9), n, note


def memory_start(device: torch.device) -> int:
    """Bytes allocated now; resets the CUDA peak counter."""
    if device.type != "cuda":
        return 0
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def memory_peak(device: torch.device, start: int) -> int:
    """CUDA: the peak of allocated memory since :func:`memory_start`, above what was allocated then. CPU: the process's peak RSS so far."""
    if device.type == "cuda":
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device)) - start
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def memory_kind(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated during the item, above what was allocated before it"
    return "peak RSS of the process so far (ru_maxrss; cumulative, not per item)"


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def family_of(stage: Any) -> str:
    return next((name for name, cls in engine_overhead.FAMILIES.items() if isinstance(stage, cls)), type(stage).__name__)


def dtype_name(dtype: torch.dtype | None) -> str:
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def item_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:400]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the chains
def chain_sets(chain: str, size: int, plan: Plan) -> list[str]:
    """``--set`` overrides for the ``full`` profile at ``size``: stage sizes scaled by size / the profile's data.size."""
    path = PIPELINES / CHAINS[chain]
    resolved = load_pipeline(path, "full")
    full_size = resolved.config.data.size
    registries = get_registries()
    sets = [f"data.size={size}", f"data.count={plan.data_count}"]
    for sc in resolved.config.stages:
        fields = registries.stages.get(sc.use).Params.model_fields
        for key in SIZE_KEYS:
            value = sc.params.get(key, fields[key].default if key in fields else None)
            if value is not None:
                sets.append(f"stages.{sc.short_name}.params.{key}={max(1, value * size // full_size)}")
        sets.extend(f"stages.{sc.short_name}.params.{key}={value}" for key, value in plan.stage_params.items())
    return sets


def prepare_chains(plan: Plan) -> dict[tuple[str, int], Prepared]:
    """Every chain at every size, composed and checked by msaug before any training."""
    prepared = {}
    for size in plan.sizes:
        for chain in CHAINS:
            try:
                prepared[chain, size] = prepare(PIPELINES / CHAINS[chain], "full", chain_sets(chain, size, plan))
            except MsaugError as exc:
                raise ConfigError(f"size {size} px, {CHAINS[chain]} (profile full): {exc}") from None
    return prepared


def train_samples(prep: Prepared) -> list[Any]:
    indices = prep.split.train if prep.split is not None else range(len(prep.dataset))
    return [prep.dataset[i] for i in indices]


def fit_stage(cs: ComposedStage, prep: Prepared, plan: Plan, device: torch.device, seconds: float, out: Path) -> dict[str, Any]:
    """Fit one stage as the runner does (``make_pairs``, ``Stage.fit``) for warm-up + timed (+1 final) steps."""
    p = cs.stage.params
    total = plan.warmup + plan.steps + 1  # the final step writes a checkpoint and a sample grid: not timed
    row: dict[str, Any] = {
        "stage": cs.name, "use": cs.use, "family": family_of(cs.stage),
        "input": str(cs.stage.input), "output": ", ".join(map(str, cs.stage.outputs)),
        "width": getattr(p, "width", None), "batch_size": getattr(p, "batch_size", None),
        "steps_planned": total, "warmup_steps": plan.warmup, "budget_s": round(seconds, 2),
        "memory_floor_bytes": cs.memory,
    }
    if seconds <= 0 or seconds < plan.min_item_seconds:
        return {**row, "status": "cut_short", "steps_done": 0, "steps_per_s": None,
                "note": f"not started: {max(seconds, 0):.1f} s of the section's share left"}
    clock = StepClock(device, plan.warmup, plan.warmup + plan.steps)
    ctx = FitContext(out_dir=out, device=device, seed=cs.index, resume=False, progress=clock, show_progress=False)
    cs.stage.to(device)
    start = memory_start(device)
    began = time.monotonic()
    try:
        summary = cs.stage.fit(make_pairs(cs, train_samples(prep), prep.spec), Budget(steps=total, seconds=seconds), ctx)
    except (RuntimeError, MsaugError) as exc:  # CUDA out of memory, a diverged stage: recorded, the check goes on
        vars(cs.stage).pop("trainer", None)
        release(device)
        return {**row, "status": "error", "steps_done": 0, "steps_per_s": None, "note": item_error(exc)}
    cs.stage.to(device)
    peak = memory_peak(device, start)
    trainer = vars(cs.stage).pop("trainer", None)  # GanStage.fit keeps its trainer (G, D, optimisers): free it
    rate, timed, note = clock.rate()
    done = int(summary.get("steps", 0))
    row.update({
        "status": "ok" if done >= total and rate is not None else "cut_short",
        "steps_done": done, "timed_steps": timed, "seconds": round(time.monotonic() - began, 3),
        "steps_per_s": None if rate is None else round(rate, 3),
        "images_per_s": None if rate is None or row["batch_size"] is None else round(rate * row["batch_size"], 2),
        "peak_memory_bytes": peak,
        "dtype": dtype_name(getattr(trainer, "amp_dtype", None)),
        "channels_last": use_channels_last(device),
    })
    if done < total:
        note = f"stopped at step {done} of {total} by its {seconds:.1f} s share" + (f"; {note}" if note else "")
    if note:
        row["note"] = note
    del trainer
    release(device)
    return row


def train_section(prepared: dict[tuple[str, int], Prepared], plan: Plan, device: torch.device, section: Section,
                  work: Path) -> list[dict[str, Any]]:
    items = [(key, cs) for key, prep in prepared.items() for cs in prep.chain.stages]
    rows = []
    for i, ((chain, size), cs) in enumerate(items):
        row = fit_stage(cs, prepared[chain, size], plan, device, section.per_item(len(items) - i),
                        work / f"{chain}-{size}" / cs.folder)
        rows.append({"chain": chain, "pipeline": CHAINS[chain], "size": size, **row})
        if row["status"] != "ok":
            section.cut.append(f"{chain} {size} px {cs.name}: {row.get('note', row['status'])}")
        say(f"train {chain} {size} px {cs.name} ({row['family']}): {row['status']}, {row.get('steps_per_s')} steps/s")
    return rows


def generate_chain(prep: Prepared, plan: Plan, device: torch.device, seconds: float, out: Path) -> dict[str, Any]:
    """pairs/s of the chain alone (``run_chain``, after one warm-up batch) and with files written (``generate``)."""
    gen = prep.config.generate
    batch = min(gen.batch_size, max(1, plan.pairs // 2))
    row: dict[str, Any] = {"batch_size": batch, "pairs_planned": plan.pairs, "budget_s": round(seconds, 2)}
    if seconds <= 0 or seconds < plan.min_item_seconds:
        return {**row, "status": "cut_short", "pairs": 0, "note": f"not started: {max(seconds, 0):.1f} s of the section's share left"}
    began = time.monotonic()
    for cs in prep.chain.stages:
        if hasattr(cs.stage, "eval"):
            cs.stage.eval()
    start = memory_start(device)
    try:
        run_chain(prep.chain, list(range(batch)), gen.seed, device)  # warm-up (first kernels, allocator)
        t = time.perf_counter()
        run_chain(prep.chain, list(range(batch, 2 * batch)), gen.seed, device)  # returns CPU tensors: synchronized
        per_batch = time.perf_counter() - t
        left = seconds - (time.monotonic() - began)
        fits = int(left / (2 * per_batch)) * batch  # room for writing the files as well
        count = min(plan.pairs, fits)
        if count < 1:
            return {**row, "status": "cut_short", "pairs": 0, "chain_pairs_per_s": round(batch / per_batch, 2),
                    "note": f"no room left for writing pairs ({left:.1f} s)"}
        writer = SyntheticWriter(out, product_spec(prep), gen.bit_depth)
        result = generate(prep.chain, writer, count, batch, gen.seed, device)
    except (RuntimeError, MsaugError) as exc:
        release(device)
        return {**row, "status": "error", "pairs": 0, "note": item_error(exc)}
    row.update({
        "status": "ok" if result.written >= plan.pairs else "cut_short",
        "pairs": result.written, "seconds": round(result.seconds, 3),
        "pairs_per_s": round(result.pairs_per_second, 2), "chain_pairs_per_s": round(batch / per_batch, 2),
        "peak_memory_bytes": memory_peak(device, start),
    })
    if result.written < plan.pairs:
        row["note"] = f"{result.written} of {plan.pairs} pairs: the rest would not fit the section's share"
    release(device)
    return row


def generate_section(prepared: dict[tuple[str, int], Prepared], plan: Plan, device: torch.device, section: Section,
                     work: Path) -> list[dict[str, Any]]:
    rows = []
    for i, ((chain, size), prep) in enumerate(prepared.items()):
        row = generate_chain(prep, plan, device, section.per_item(len(prepared) - i), work / f"synthetic-{chain}-{size}")
        rows.append({"chain": chain, "pipeline": CHAINS[chain], "size": size,
                     "stages": " -> ".join(cs.use for cs in prep.chain.stages), **row})
        if row["status"] != "ok":
            section.cut.append(f"{chain} {size} px: {row.get('note', row['status'])}")
        say(f"generate {chain} {size} px: {row['status']}, {row.get('pairs_per_s')} pairs/s")
    return rows


def ratio_params(prepared: dict[tuple[str, int], Prepared], size: int) -> dict[str, int]:
    """The width and batch size of the xray chain's translator stage in the full profile."""
    stage = next(cs.stage for cs in prepared["xray", size].chain.stages if family_of(cs.stage) == RATIO_FAMILY)
    return {"width": stage.params.width, "batch_size": stage.params.batch_size}


def bare_ratio_section(params: dict[str, int], size: int, plan: Plan, device: torch.device, section: Section,
                       work: Path) -> list[dict[str, Any]]:
    """engine_overhead's measurement: one warm-up round, then rounds alternating bare loop / trainer while time is left."""
    row: dict[str, Any] = {"family": RATIO_FAMILY, "size": size, **params, "steps_per_round": plan.ratio_steps,
                           "rounds_planned": plan.rounds}
    if section.left() <= 0 or section.left() < plan.min_item_seconds:
        section.cut.append("not started: no time left")
        return [{**row, "status": "cut_short", "rounds": 0, "note": "not started: no time left"}]
    stage, pairs = engine_overhead.family_setup(RATIO_FAMILY, size, params)
    bare: list[float] = []
    framed: list[float] = []
    try:
        t = time.monotonic()
        engine_overhead.time_round(stage, pairs, plan.warmup, work / "warm-up", device)
        round_s = (time.monotonic() - t) * plan.ratio_steps / plan.warmup
        for r in range(plan.rounds):
            if section.left() < round_s:
                break
            t = time.monotonic()
            b, f, _ = engine_overhead.time_round(stage, pairs, plan.ratio_steps, work / f"round{r}", device)
            round_s = time.monotonic() - t
            bare.append(b)
            framed.append(f)
    except (RuntimeError, MsaugError) as exc:
        release(device)
        return [{**row, "status": "error", "rounds": len(bare), "note": item_error(exc)}]
    release(device)
    row["rounds"] = len(bare)
    if not bare:
        section.cut.append("no timed round fitted the section's share")
        return [{**row, "status": "cut_short", "note": "no timed round fitted the section's share"}]
    b, f = statistics.median(bare), statistics.median(framed)
    row.update({"status": "ok" if len(bare) == plan.rounds else "cut_short", "bare_s_per_step": round(b, 5),
                "trainer_s_per_step": round(f, 5), "ratio": round(f / b, 3), "trainer_steps_per_s": round(1 / f, 3)})
    if len(bare) < plan.rounds:
        row["note"] = f"{len(bare)} of {plan.rounds} rounds fitted the section's share"
        section.cut.append(row["note"])
    return [row]


def ddp_section(mode: str, device: torch.device, params: dict[str, int], size: int, plan: Plan, section: Section,
                work: Path) -> tuple[list[dict[str, Any]], str | None]:
    """``(rows, reason skipped)``: a 2-process torchrun fit through the trainer's DDP path."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if mode == "off":
        return [], "--ddp off"
    if mode == "auto":
        if device.type != "cuda":
            return [], f"the check runs on {device.type}: a 2-process NCCL step needs 2 CUDA devices"
        if count < 2:
            return [], f"{count} CUDA device visible ({torch.cuda.get_device_name(device)}): a 2-process NCCL step needs 2"
    backend = "nccl" if mode == "auto" else "gloo"
    row: dict[str, Any] = {"processes": 2, "backend": backend, "family": RATIO_FAMILY, "size": size, **params,
                           "steps_planned": plan.warmup + plan.steps + 1}
    if section.left() <= 0 or section.left() < plan.min_item_seconds:
        section.cut.append("not started: no time left")
        return [{**row, "status": "cut_short", "note": "not started: no time left"}], None
    result = work / "ddp" / "rank0.json"
    result.parent.mkdir(parents=True, exist_ok=True)
    spec = {"size": size, **params, "warmup": plan.warmup, "steps": plan.steps, "out": str(work / "ddp")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(Path(__file__).resolve()), "--ddp-worker", str(result), "--worker-spec", json.dumps(spec)]
    env = dict(os.environ)
    if backend == "gloo":  # CPU processes (tests): no GPU, one thread each
        env.update({"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    log = work / "ddp" / "torchrun.log"
    began = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(1.0, section.left()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both of its workers
            proc.wait()
            note = f"killed after {time.monotonic() - began:.1f} s, its share of the time"
            section.cut.append(note)
            return [{**row, "status": "cut_short", "note": note}], None
    if rc != 0 or not result.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-6:]
        return [{**row, "status": "error", "note": f"torchrun exited {rc}: " + " | ".join(tail)[-600:]}], None
    row.update(json.loads(result.read_text()))
    row["seconds"] = round(time.monotonic() - began, 2)
    return [row], None


def ddp_worker(result: Path, spec: dict[str, Any]) -> None:
    """Runs under torchrun: fits the translator family with DDP; rank 0 writes ``result``."""
    if not distributed.init_from_env():
        raise SystemExit("error: --ddp-worker runs under torchrun with 2 processes")
    device = distributed.local_device()
    stage, pairs = engine_overhead.family_setup(RATIO_FAMILY, spec["size"], {"width": spec["width"], "batch_size": spec["batch_size"]})
    total = spec["warmup"] + spec["steps"] + 1
    clock = StepClock(device, spec["warmup"], spec["warmup"] + spec["steps"])
    ctx = FitContext(out_dir=Path(spec["out"]) / "stage", device=device, resume=False, progress=clock, show_progress=False)
    start = memory_start(device)
    summary = stage.fit(pairs, Budget(steps=total), ctx)
    rate, timed, note = clock.rate()
    world = distributed.world_size()
    if distributed.is_main():
        write_json(result, {
            "status": "ok" if rate is not None and summary["steps"] >= total else "cut_short",
            "world_size": world, "backend": torch.distributed.get_backend(), "steps_done": summary["steps"],
            "timed_steps": timed, "steps_per_s": None if rate is None else round(rate, 3),
            "images_per_s": None if rate is None else round(rate * spec["batch_size"] * world, 2),
            "peak_memory_bytes": memory_peak(device, start), "dtype": dtype_name(autocast_dtype(device, stage.params.amp)),
            **({"note": note} if note else {}),
        })
    distributed.shutdown()


# ----------------------------------------------------------------------------- report
def device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"type": "cuda", "name": props.name, "count": torch.cuda.device_count(), "memory_bytes": props.total_memory,
                "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
                "bf16_supported": torch.cuda.is_bf16_supported()}
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"type": "cpu", "name": name, "cores": os.cpu_count(), "threads": torch.get_num_threads()}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _bytes(value: Any) -> str:
    return "–" if value is None else human_bytes(value)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def _status(row: dict[str, Any]) -> str:
    return row["status"] + (f" ({row['note']})" if row.get("note") else "")


def render_markdown(report: dict[str, Any]) -> str:
    d, s = report["device"], report["sections"]
    lines = [
        "# msaug GPU check", "",
        f"Device: {d['type']} — {d['name']}; torch {report['torch']}; msaug {report['msaug']}; "
        f"autocast dtype {report['dtype']}; channels_last {report['channels_last']}; "
        f"{report['steps']['warmup']} warm-up + {report['steps']['timed']} timed steps per stage"
        f"{' (tiny CPU plan)' if report['tiny'] else ''}; {report['seconds']:.1f} s of {report['max_seconds']:g} s.",
        f"Peak memory: {report['memory_kind']}.", "", "## Training (steps/s after the warm-up)", "",
    ]
    lines += _table(
        ["chain", "stage", "family", "size", "width", "batch", "steps", "steps/s", "images/s", "peak memory", "floor", "status"],
        [[r["chain"], r["stage"], r["family"], str(r["size"]), _fmt(r["width"]), _fmt(r["batch_size"]),
          f"{r.get('steps_done', 0)}/{r['steps_planned']}", _fmt(r.get("steps_per_s")), _fmt(r.get("images_per_s"), 1),
          _bytes(r.get("peak_memory_bytes")), _bytes(r.get("memory_floor_bytes")), _status(r)] for r in s["train"]["rows"]],
    )
    lines += ["", "## Generation (pairs/s)", ""]
    lines += _table(
        ["chain", "size", "pairs", "batch", "pairs/s, files written", "pairs/s, chain only", "status"],
        [[r["chain"], str(r["size"]), f"{r.get('pairs', 0)}/{r['pairs_planned']}", str(r["batch_size"]),
          _fmt(r.get("pairs_per_s")), _fmt(r.get("chain_pairs_per_s")), _status(r)] for r in s["generate"]["rows"]],
    )
    lines += ["", "## Trainer over bare PyTorch (benchmarks/engine_overhead.py's loop)", ""]
    lines += _table(
        ["family", "size", "width", "batch", "rounds", "bare s/step", "trainer s/step", "ratio", "status"],
        [[r["family"], str(r["size"]), str(r["width"]), str(r["batch_size"]), f"{r.get('rounds', 0)}/{r['rounds_planned']}",
          _fmt(r.get("bare_s_per_step"), 4), _fmt(r.get("trainer_s_per_step"), 4), _fmt(r.get("ratio"), 3), _status(r)]
         for r in s["bare_ratio"]["rows"]],
    )
    lines += ["", "## DDP (2-process torchrun)", ""]
    if s["ddp"].get("skipped"):
        lines.append(f"Skipped: {s['ddp']['skipped']}.")
    else:
        lines += _table(
            ["processes", "backend", "family", "size", "steps", "steps/s", "images/s (all ranks)", "peak memory (rank 0)", "status"],
            [[str(r.get("world_size", r["processes"])), r["backend"], r["family"], str(r["size"]),
              f"{r.get('steps_done', 0)}/{r['steps_planned']}", _fmt(r.get("steps_per_s")), _fmt(r.get("images_per_s"), 1),
              _bytes(r.get("peak_memory_bytes")), _status(r)] for r in s["ddp"]["rows"]],
        )
    lines += ["", "## Sections (time guard)", ""]
    lines += _table(["section", "share s", "used s", "status"],
                    [[name, _fmt(sec["share_s"], 1), _fmt(sec["used_s"], 1), sec["status"]] for name, sec in s.items()])
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any]) -> None:
    write_json(out / REPORT_JSON, report)


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes and step counts (CPU by default): seconds, for tests")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto; --tiny: cpu unless given)")
    ap.add_argument("--max-seconds", type=float, default=480.0, help="overall time limit, shared among the sections")
    ap.add_argument("--sizes", type=int, nargs="+", help="data sizes in px (default 256 512; --tiny: 32 64)")
    ap.add_argument("--steps", type=int, help="timed training steps per stage (default 20; --tiny: 2)")
    ap.add_argument("--warmup", type=int, help="untimed warm-up steps per stage (default 5; --tiny: 1)")
    ap.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice)")
    ap.add_argument("--ddp", choices=("auto", "gloo", "off"), default="auto",
                    help="auto: NCCL with 2+ CUDA devices, else skipped; gloo: 2 CPU processes (tests the path)")
    ap.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-spec", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = TINY_PLAN if args.tiny else GPU_PLAN
    changes: dict[str, Any] = {}
    for key in ("steps", "warmup"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{key} {value}: must be at least 1")
            changes[key] = value
    if args.sizes:
        bad = [s for s in args.sizes if s < 32 or s % 4]
        if bad:
            raise ConfigError(f"--sizes {bad[0]}: a size must be a multiple of 4 and at least 32 px")
        changes["sizes"] = tuple(args.sizes)
    if args.max_seconds <= 0:
        raise ConfigError(f"--max-seconds {args.max_seconds:g}: must be positive")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads}: must be at least 1")
    return Plan(**{**plan.__dict__, **changes}) if changes else plan


def check_out(out: Path | None) -> Path:
    if out is None:
        raise ConfigError("--out DIR is required (the folder for gpu_check.json and gpu_check.md)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    return out


def run_check(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    device = resolve_device("cpu" if args.tiny and args.device == "auto" else args.device)
    out = check_out(args.out)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    guard = Guard(args.max_seconds)
    report: dict[str, Any] = {
        "check": "msaug benchmarks/gpu_check.py", "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]], "tiny": plan.tiny,
        "device": device_info(device), "torch": torch.__version__, "msaug": msaug.__version__, "python": platform.python_version(),
        "dtype": dtype_name(autocast_dtype(device, True)), "channels_last": use_channels_last(device),
        "memory_kind": memory_kind(device), "sizes": list(plan.sizes),
        "steps": {"warmup": plan.warmup, "timed": plan.steps, "final_untimed": 1},
        "pairs_per_chain": plan.pairs, "data_count": plan.data_count, "stage_params": plan.stage_params,
        "pipelines": {c: [CHAINS[c], *ALSO_COVERS.get(c, [])] for c in CHAINS},
        "max_seconds": args.max_seconds, "shares": SHARES, "seconds": 0.0, "sections": {},
    }
    sections = report["sections"]

    def done(name: str, section: Section, rows: list[dict[str, Any]], **extra: Any) -> None:
        sections[name] = section.record(rows, **extra)
        report["seconds"] = round(time.monotonic() - guard.start, 2)
        write_report(out, report)

    with tempfile.TemporaryDirectory(prefix="msaug-gpu-check-") as tmp:
        work = Path(tmp)
        section = guard.section("train")
        prepared = prepare_chains(plan)  # configuration errors stop the check here, before any training
        done("train", section, train_section(prepared, plan, device, section, work / "stages"))
        section = guard.section("generate")
        done("generate", section, generate_section(prepared, plan, device, section, work))
        size = plan.sizes[0]
        params = ratio_params(prepared, size)
        del prepared
        release(device)
        section = guard.section("bare_ratio")
        done("bare_ratio", section, bare_ratio_section(params, size, plan, device, section, work / "ratio"))
        section = guard.section("ddp")
        rows, skipped = ddp_section(args.ddp, device, params, size, plan, section, work)
        if skipped:
            done("ddp", section, rows, skipped=skipped)
            sections["ddp"]["status"] = "skipped"
            write_report(out, report)
        else:
            done("ddp", section, rows)
    markdown = render_markdown(report)
    atomic_write(out / REPORT_MD, markdown)
    print(markdown, end="")
    return 1 if any(sec["status"] == "error" for sec in sections.values()) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ddp_worker is not None:
        ddp_worker(args.ddp_worker, json.loads(args.worker_spec or "{}"))
        return 0
    try:
        return run_check(args)
    except MsaugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
