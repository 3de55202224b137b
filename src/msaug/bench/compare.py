"""``msaug compare``: the same data, the same budget, several generation pipelines.

For every seed and arm (a pipeline YAML), the arm's pipeline runs in its own process (so
its peak memory can be measured honestly) with the same real data split, the same total
training budget (split over the arm's trainable stages in proportion to their declared
steps) and the same segmenter settings; its evaluate block runs the protocols ``real``,
``synth``, ``synth_finetune`` and ``mix`` on the real test split. Then cost figures are
measured in-process from the run's checkpoints (generator parameters, FLOPs per pair).
Every run keeps its own folder, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from msaug.errors import ConfigError, MsaugError
from msaug.io import atomic_write, write_json
from msaug.pipeline.records import Evaluation, Record, RunReport, read_record
from msaug.pipeline.runfolder import RunFolder
from msaug.progress import PlainReporter, Reporter, escape
from msaug.segment.config import PROTOCOLS

ALIASES = {"single": "{domain}-single.yaml", "multi": "{domain}.yaml", "classic": "examples/classic.yaml"}


@dataclass
class CompareOptions:
    arms: list[str]
    domain: str = "xray"
    profile: str | None = None
    seeds: int = 3
    train_fraction: float = 1.0
    budget: str | None = None
    out: Path | None = None
    device: str = "auto"
    sets: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    show_progress: bool = True


def pipelines_dir() -> list[Path]:
    """Where arm aliases are looked up: ./pipelines, then the msaug source tree's pipelines/."""
    here = Path("pipelines")
    source = Path(__file__).resolve().parents[3] / "pipelines"
    return [p for p in (here, source) if p.is_dir()]


def resolve_arm(arm: str, domain: str) -> Path:
    if arm in ALIASES:
        name = ALIASES[arm].format(domain=domain)
        for folder in pipelines_dir():
            if (folder / name).is_file():
                return folder / name
        raise ConfigError(f"arm {arm!r}: {name} not found in ./pipelines or the msaug source tree")
    path = Path(arm)
    if not path.is_file():
        raise ConfigError(f"arm {arm!r} is neither a pipeline YAML nor one of {', '.join(ALIASES)}")
    return path


def parse_budget(text: str) -> tuple[str, float]:
    """``600s`` (wall-clock seconds) or ``2000`` / ``2000steps`` (training steps) in total per arm."""
    t = text.strip().lower()
    try:
        if t.endswith("s") and not t.endswith("steps"):
            value, unit = float(t[:-1]), "seconds"
        else:
            value, unit = float(t.removesuffix("steps")), "steps"
    except ValueError:
        raise ConfigError(f"--budget {text!r}: expected seconds like 600s or steps like 2000") from None
    if value <= 0:
        raise ConfigError(f"--budget {text!r}: must be positive")
    return unit, value


def budget_overrides(prepared: Any, budget: tuple[str, float] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Overrides (dotted keys to values) that give an arm's trainable stages ``budget`` in total, and how it was split.

    A seconds budget lifts the stages' step limits (``steps: null``), so the clock alone stops them.
    """
    trainable = [cs for cs in prepared.chain.stages if cs.stage.trainable]
    declared = {cs.name: (cs.budget.steps or 0) for cs in trainable}
    if budget is None:
        return {}, {"unit": "steps (declared)", "total": sum(declared.values()), "stages": declared}
    unit, total = budget
    weights = {name: (steps or 1) for name, steps in declared.items()}
    norm = sum(weights.values()) or 1
    shares = {name: total * w / norm for name, w in weights.items()}
    overrides: dict[str, Any] = {}
    for name, share in shares.items():
        if unit == "seconds":
            overrides[f"stages.{name}.budget.seconds"] = round(share, 3)
            overrides[f"stages.{name}.budget.steps"] = None
        else:
            overrides[f"stages.{name}.budget.steps"] = max(1, round(share))
    return overrides, {"unit": unit, "total": total, "stages": {n: round(v, 3) for n, v in shares.items()}}


class ProcessFigures(Record):
    """What the arm's child process cost: its wall time and peak resident memory."""

    wall_seconds: float
    peak_rss_mb: float


class CostFigures(Record):
    """Generator parameters by stage and FLOPs per generated pair, measured on a run's checkpoints."""

    parameters: dict[str, int]
    parameters_total: int
    flops_per_pair: float
    cuda_max_allocated_mb: float | None


class SeedRun(Record):
    """One arm at one seed: OUT/<arm>/seed-<n>.json, written when its run finished (a rerun skips it)."""

    arm: str
    seed: int
    pipeline: str
    process: ProcessFigures
    report: RunReport
    #: the run's segmentation evaluation (the report's, repeated for readers of this file)
    evaluation: Evaluation | None
    cost: CostFigures


def read_seed_run(path: Path) -> SeedRun:
    return read_record(path, SeedRun, "an msaug compare seed record (seed-<n>.json)")


def arm_run(out: Path, arm: str, seed: int) -> RunFolder:
    """The run folder of ``arm`` at ``seed`` in the comparison folder ``out``: ``OUT/<arm>/seed-<n>/``."""
    return RunFolder(out / arm / f"seed-{seed}")


def run_one(path: Path, run_dir: Path, profile: str | None, sets: list[str], device: str, show_progress: bool) -> ProcessFigures:
    """Run one arm/seed in a child process (``sets``: its ``--set`` arguments); returns wall time and the child's peak RSS.

    The child is ``msaug pipeline run``: it prints its own lines and bars on this process's terminal.
    """
    cmd = [sys.executable, "-m", "msaug", "pipeline", "run", str(path), "--out", str(run_dir), "--device", device]
    if profile:
        cmd += ["--profile", profile]
    for s in sets:
        cmd += ["--set", s]
    if run_dir.exists():
        cmd.append("--resume")
    if not show_progress:
        cmd.append("--quiet")
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise MsaugError(f"arm run failed (exit {proc.returncode}): {' '.join(cmd)}; its folder {run_dir} is kept, rerun to resume")
    return ProcessFigures(wall_seconds=round(time.monotonic() - start, 2), peak_rss_mb=round(usage.ru_maxrss / 1024, 1))


def cost_figures(run_dir: Path, device: str = "cpu", batch: int = 4) -> CostFigures:
    """Generator parameters and FLOPs per generated pair, measured on the run's checkpoints."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from msaug.pipeline.generate import run_chain
    from msaug.pipeline.runner import load_stage, prepare
    from msaug.train.device import resolve_device

    run = RunFolder(run_dir)
    prepared = prepare(run.resolved, profile="none", training=False)
    dev = resolve_device(device)
    params = {}
    for cs in prepared.chain.stages:
        load_stage(cs, run.stage(cs.folder))
        cs.stage.to(dev)
        if hasattr(cs.stage, "eval"):
            cs.stage.eval()
        params[cs.name] = sum(int(t.numel()) for k, t in cs.stage.state_dict().items() if t.is_floating_point() and "labels" not in k)
    with FlopCounterMode(display=False) as counter:
        run_chain(prepared.chain, list(range(batch)), 0, dev)
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return CostFigures(parameters=params, parameters_total=sum(params.values()), flops_per_pair=counter.get_total_flops() / batch,
                       cuda_max_allocated_mb=peak_cuda)


def training_flops(report: RunReport) -> float | None:
    """FLOPs the run's stages trained with (each stage's ``train_flops``, counted by the trainer).

    A stage that trained (it took steps or had a budget) without counting them makes the total
    unknown (``None``); a stage that trains nothing (e.g. ``core.real_labels``) adds nothing.
    """
    total = 0.0
    for st in report.stages:
        flops = st.summary.get("train_flops")
        if isinstance(flops, (int, float)):
            total += flops
        elif st.summary.get("steps") or (st.budget is not None and (st.budget.steps or st.budget.seconds)):
            return None
    return total


def _stat(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(vals), "values": vals}


def summarize_arm(records: list[SeedRun], protocols: list[str]) -> dict[str, Any]:
    """Mean ± std over seeds of every figure the comparison reports."""
    evaluations = [r.evaluation or Evaluation() for r in records]  # a run without one counts as not evaluated
    first = evaluations[0]
    out: dict[str, Any] = {"quality": {}, "cost": {}, "realism": {}}
    for p in protocols:
        out["quality"][p] = {
            "dice": _stat([e.mean(p, "dice") for e in evaluations]),
            "iou": _stat([e.mean(p, "iou") for e in evaluations]),
        }
        classes = first.protocols[p].metrics.classes if p in first.protocols else {}
        out["quality"][p]["dice_per_class"] = {c: _stat([e.class_mean(p, c, "dice") for e in evaluations]) for c in classes}
    out["cost"] = {
        "train_seconds": _stat([sum(s.seconds or 0 for s in r.report.stages) for r in records]),
        "train_flops": _stat([training_flops(r.report) for r in records]),
        "stage_seconds": {
            s.name: _stat([next((x.seconds for x in r.report.stages if x.name == s.name), None) for r in records])
            for s in records[0].report.stages
        },
        "pairs_per_second": _stat([r.report.generate.pairs_per_second for r in records]),
        "peak_rss_mb": _stat([r.process.peak_rss_mb for r in records]),
        "parameters": records[0].cost.parameters_total,
        "flops_per_pair": records[0].cost.flops_per_pair,
        "wall_seconds": _stat([r.process.wall_seconds for r in records]),
    }
    nearest = [e.label_realism.nearest_neighbour_iou if e.label_realism else None for e in evaluations]
    diversity = [e.label_realism.diversity if e.label_realism else None for e in evaluations]
    out["realism"] = {
        "qc_mean_dice": _stat([e.qc.mean_dice if e.qc else None for e in evaluations]),
        "label_precision": _stat([n.precision if n else None for n in nearest]),
        "label_coverage": _stat([n.coverage if n else None for n in nearest]),
        "label_diversity": _stat([d.synthetic if d else None for d in diversity]),
    }
    out["paired"] = paired_over_seeds(evaluations, [p for p in protocols if p != "real"])
    out["resolution"] = first.resolution.description if first.resolution else None
    for key, value in (first.image_realism or {}).items():
        if isinstance(value, (int, float)) and not key.endswith("_std"):  # KID's own std is not a figure
            out["realism"][f"image_{key}"] = _stat([(e.image_realism or {}).get(key) for e in evaluations])
    from msaug.segment.stage_probe import summarize_stage_tables

    out["stages"] = summarize_stage_tables([e.stages for e in evaluations])
    return out


def paired_over_seeds(evaluations: list[Evaluation], protocols: list[str]) -> dict[str, Any]:
    """Each protocol against ``real`` image by image: the per-seed mean differences, and all seeds' images pooled.

    Every seed compares its two segmenters on its own test images; pooling treats each
    (seed, image) as one pair, so its interval covers the choice of images, and the per-seed
    row shows the spread between training seeds. Seeds whose results hold no per-image
    scores (written before they were kept) are left out of both.
    """
    from msaug.segment.paired import paired_difference

    out: dict[str, Any] = {}
    for p in protocols:
        pairs = [(e.per_image_dice("real"), e.per_image_dice(p)) for e in evaluations]
        pairs = [(b, o) for b, o in pairs if b is not None and o is not None and len(b) == len(o)]
        if not pairs:
            continue
        per_seed = [paired_difference(b, o) for b, o in pairs]
        out[p] = {"per_seed": _stat([d["mean_difference"] for d in per_seed]),
                  "seeds_significant": sum(1 for d in per_seed if d["wilcoxon_p"] is not None and d["wilcoxon_p"] < 0.05),
                  "pooled": paired_difference([v for b, _ in pairs for v in b], [v for _, o in pairs for v in o])}
    return out


MIN_SEEDS = 2
"""Below this many seeds there is no seed spread, and the verdict calls no winner."""


def against_real(arm: dict[str, Any], seeds: int) -> dict[str, Any] | None:
    """The arm's best synthetic protocol against ``real`` (the question users ask: do the pairs help?)."""
    real = arm["quality"].get("real", {}).get("dice", {})
    others = [(p, q["dice"]) for p, q in arm["quality"].items() if p != "real" and q["dice"].get("mean") is not None]
    if real.get("mean") is None or not others:
        return None
    protocol, best = max(others, key=lambda x: x[1]["mean"])
    gap, spread = best["mean"] - real["mean"], best["std"] + real["std"]
    if seeds < MIN_SEEDS:
        call = "one seed: no spread"
    elif abs(gap) <= spread:
        call = f"within the seed spread of {spread:.3f}"
    else:
        call = ("helps" if gap > 0 else "hurts") + ", beyond the seed spread"
    return {"protocol": protocol, "gap": gap, "spread": spread, "call": call}


TRAINING_TIME_TOLERANCE = 0.02
"""Training times closer than this fraction of the faster arm's count as equal in the verdict."""


def verdict(summary: dict[str, dict[str, Any]], headline: str = "synth") -> dict[str, Any]:
    """Which arm won on quality (mean Dice of ``headline``), which on cost, and whether it is beyond the spread.

    A difference counts as beyond the seed-to-seed spread when the gap between the two best
    means exceeds the sum of their standard deviations (a deliberately strict criterion
    for 3-5 seeds). Training times must in addition differ by more than
    ``TRAINING_TIME_TOLERANCE`` of the faster arm: under a seconds budget every arm stops
    within one step of the cap, so its time barely varies between seeds and a sub-second
    overshoot would otherwise count as a win.
    """
    def ranked(getter, reverse: bool) -> list[tuple[str, dict[str, Any]]]:
        items = [(arm, getter(s)) for arm, s in summary.items() if getter(s)["mean"] is not None]
        return sorted(items, key=lambda x: x[1]["mean"], reverse=reverse)

    out: dict[str, Any] = {"headline_protocol": headline}
    q = ranked(lambda s: s["quality"].get(headline, {}).get("dice", {"mean": None}), True)
    seeds = min((stat["n"] for _, stat in q), default=0)
    if len(q) >= 2:
        (best, b), (second, c) = q[0], q[1]
        gap = b["mean"] - c["mean"]
        out["quality"] = {"winner": best, "runner_up": second, "gap": gap, "spread": b["std"] + c["std"],
                          "beyond_spread": seeds >= MIN_SEEDS and gap > b["std"] + c["std"], "seeds": seeds}
    calls = {arm: against_real(s, seeds) for arm, s in summary.items()}
    out["versus_real"] = {arm: call for arm, call in calls.items() if call}
    cost = sorted(((arm, s["cost"]["flops_per_pair"]) for arm, s in summary.items()), key=lambda x: x[1])
    time_rank = ranked(lambda s: s["cost"]["train_seconds"], False)
    if len(cost) >= 2:
        out["cost"] = {"cheapest_generation": cost[0][0], "flops_per_pair": dict(cost)}
    if len(time_rank) >= 2:
        (fast, f), (slow, g) = time_rank[0], time_rank[1]
        out["cost"]["fastest_training"] = fast
        gap = g["mean"] - f["mean"]
        out["cost"]["training_gap_seconds"] = gap
        out["cost"]["training_beyond_spread"] = gap > f["std"] + g["std"] and gap > TRAINING_TIME_TOLERANCE * f["mean"]
    parts = []
    if "quality" in out:
        v = out["quality"]
        if v["seeds"] < MIN_SEEDS:
            parts.append(f"quality ({headline} Dice): {v['winner']} is ahead by {v['gap']:.3f}, but {v['seeds']} seed "
                         f"gives no spread: no winner is called (use --seeds {MIN_SEEDS} or more)")
        else:
            parts.append(f"quality ({headline} Dice): {v['winner']} wins by {v['gap']:.3f} "
                         + ("(beyond the seed spread)" if v["beyond_spread"] else f"(within the seed spread of {v['spread']:.3f})"))
    for arm, r in out["versus_real"].items():
        parts.append(f"{arm}: best synthetic protocol {r['protocol']} {r['gap']:+.3f} Dice vs real ({r['call']})")
    if "cost" in out:
        c = out["cost"]
        training = ""
        if "fastest_training" in c:
            training = (f", {c['fastest_training']} trains fastest" if c["training_beyond_spread"]
                        else f", training time equal (within the seed spread or {TRAINING_TIME_TOLERANCE:.0%})")
        parts.append(f"cost: {c['cheapest_generation']} needs the fewest FLOPs per pair" + training)
    out["line"] = "; ".join(parts) or "not enough arms to compare"
    return out


def profile_and_out(options: CompareOptions, paths: dict[str, Path], suffix: str = "") -> tuple[str | None, Path]:
    """The profile every arm runs (the option, else the first arm's default) and the output folder."""
    from msaug.pipeline.config import load_pipeline

    profile = options.profile or load_pipeline(next(iter(paths.values()))).profile
    return profile, options.out or Path("runs") / f"compare-{options.domain}-{profile or 'default'}{suffix}"


def compare(options: CompareOptions, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run the comparison; returns the report (also written to OUT/report.json); messages and the table go to ``reporter``."""
    from msaug.pipeline.config import load_pipeline
    from msaug.pipeline.runner import prepare

    reporter = reporter if reporter is not None else PlainReporter(progress=options.show_progress)
    if len(options.arms) < 2:
        raise ConfigError("compare needs at least two arms, e.g. msaug compare single multi")
    if not 0 < options.train_fraction <= 1:
        raise ConfigError(f"--train-fraction {options.train_fraction}: must be in (0, 1]")
    if options.seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    unknown = [p for p in options.protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocols {unknown}; valid: {', '.join(PROTOCOLS)}")
    budget = parse_budget(options.budget) if options.budget else None
    paths = {arm: resolve_arm(arm, options.domain) for arm in options.arms}
    names = {arm: (arm if arm in ALIASES else Path(arm).stem) for arm in options.arms}
    if len(set(names.values())) != len(names):
        raise ConfigError(f"arms must have distinct names, got {list(names.values())}")
    profile, out = profile_and_out(options, paths)
    out.mkdir(parents=True, exist_ok=True)
    reporter.message(f"[bold]msaug compare[/] {escape(' vs '.join(names.values()))} — domain {escape(options.domain)}, profile {escape(str(profile))}, "
                     f"{options.seeds} seeds, out {escape(str(out))}")

    plans: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # each arm's budget overrides and how its budget was split
    for arm, path in paths.items():
        base = prepare(path, profile, options.sets)
        if base.config.evaluate is None:
            raise ConfigError(f"{path}: an arm needs an evaluate block (the same segmenter for every arm)")
        plans[names[arm]] = budget_overrides(base, budget)
    budgets = {name: split for name, (_, split) in plans.items()}
    records: dict[str, list[SeedRun]] = {names[a]: [] for a in options.arms}
    for seed in range(options.seeds):
        first_run: RunFolder | None = None  # its real-trained segmenter is reused by the other arms when the key matches
        for arm, path in paths.items():
            name = names[arm]
            overrides: dict[str, Any] = {"seed": seed, "generate.seed": seed, "data.split.seed": seed,
                                         "data.split.fraction": options.train_fraction, "evaluate.protocols": list(options.protocols),
                                         **plans[name][0]}
            run = arm_run(out, name, seed)
            if first_run is None:
                first_run = run
            elif first_run.evaluation.is_dir():
                overrides["evaluate.reuse_real"] = str(first_run.root.resolve())
            record_file = out / name / f"seed-{seed}.json"
            if record_file.is_file():
                records[name].append(read_seed_run(record_file))
                reporter.message(f"[green]done earlier[/]: {escape(name)} seed {seed}")
                continue
            reporter.message(f"[bold]{escape(name)}[/] seed {seed}: {escape(str(path))}")
            resolved = load_pipeline(path, profile, options.sets, overrides)  # a bad key or value fails here, before the child runs
            process = run_one(path, run.root, profile, resolved.sets, options.device, options.show_progress)
            report = run.read_report()
            record = SeedRun(arm=name, seed=seed, pipeline=str(path), process=process, report=report, evaluation=report.evaluation,
                             cost=cost_figures(run.root, options.device))
            record.write(record_file)
            records[name].append(record)

    summary = {name: summarize_arm(recs, options.protocols) for name, recs in records.items()}
    result = {
        "arms": {names[a]: str(p) for a, p in paths.items()},
        "domain": options.domain,
        "profile": profile,
        "seeds": options.seeds,
        "train_fraction": options.train_fraction,
        "budget": budgets,
        "protocols": options.protocols,
        "summary": summary,
        "verdict": verdict(summary, "synth" if "synth" in options.protocols else options.protocols[-1]),
    }
    write_json(out / "report.json", result)
    from msaug.bench.plots import write_plots

    write_plots(out, result, {name: arm_run(out, name, 0).grid for name in records})
    atomic_write(out / "report.md", render_markdown(result))
    print_table(result, reporter)
    reporter.message(f"[bold]verdict[/]: {escape(result['verdict']['line'])}")
    return result


def _pm(stat: dict[str, Any], fmt: str = ".3f") -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:{fmt}} ± {stat['std']:{fmt}}"


def _paired_seeds(paired: dict[str, Any] | None) -> str:
    if not paired or paired["per_seed"]["mean"] is None:
        return "–"
    stat = paired["per_seed"]
    return f"{stat['mean']:+.4f} ± {stat['std']:.4f}; {paired['seeds_significant']} of {stat['n']}"


def _paired_pooled(paired: dict[str, Any] | None) -> str:
    pooled = paired.get("pooled") if paired else None
    if not pooled or pooled["mean_difference"] is None:
        return "–"
    low, high = pooled["ci95"]
    return (f"{pooled['mean_difference']:+.4f} [{low:+.4f}, {high:+.4f}], {pooled['better']} / {pooled['worse']} of "
            f"{pooled['images']}, p {pooled['wilcoxon_p']:.3g}")


def _tflops(stat: dict[str, Any] | None) -> str:
    """A FLOPs statistic in TFLOPs (``n/a``: not counted, e.g. a report from before msaug counted them)."""
    if not stat or stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean'] / 1e12:.3g} ± {stat['std'] / 1e12:.2g}"


def print_table(result: dict[str, Any], reporter: Reporter) -> None:
    arms = list(result["summary"])
    rows = [[f"Dice, {p}", *(_pm(result["summary"][a]["quality"][p]["dice"]) for a in arms)] for p in result["protocols"]]
    rows += [
        ["train time (s)", *(_pm(result["summary"][a]["cost"]["train_seconds"], ".0f") for a in arms)],
        ["train TFLOPs", *(_tflops(result["summary"][a]["cost"].get("train_flops")) for a in arms)],
        ["GFLOPs / pair", *(f"{result['summary'][a]['cost']['flops_per_pair'] / 1e9:.3f}" for a in arms)],
        ["parameters (M)", *(f"{result['summary'][a]['cost']['parameters'] / 1e6:.2f}" for a in arms)],
        ["pairs / s", *(_pm(result["summary"][a]["cost"]["pairs_per_second"], ".1f") for a in arms)],
        ["peak RSS (MB)", *(_pm(result["summary"][a]["cost"]["peak_rss_mb"], ".0f") for a in arms)],
    ]
    title = f"msaug compare — {result['domain']}, profile {result['profile']}, {result['seeds']} seeds (mean ± std)"
    reporter.table(title, ["figure", *arms], rows)


def render_markdown(result: dict[str, Any]) -> str:
    arms = list(result["summary"])
    head = "| figure | " + " | ".join(arms) + " |\n|---|" + "---|" * len(arms)
    rows = []
    for p in result["protocols"]:
        rows.append(f"| Dice, {p} | " + " | ".join(_pm(result["summary"][a]["quality"][p]["dice"]) for a in arms) + " |")
        rows.append(f"| IoU, {p} | " + " | ".join(_pm(result["summary"][a]["quality"][p]["iou"]) for a in arms) + " |")
    for p in result["protocols"]:
        if p == "real" or not any(p in result["summary"][a].get("paired", {}) for a in arms):
            continue
        rows.append(f"| Δ Dice {p} − real, paired per image (mean ± std over seeds; seeds with p < 0.05) | "
                    + " | ".join(_paired_seeds(result["summary"][a].get("paired", {}).get(p)) for a in arms) + " |")
        rows.append(f"| Δ Dice {p} − real, all seeds' test images pooled: mean [95 % interval], better / worse, p | "
                    + " | ".join(_paired_pooled(result["summary"][a].get("paired", {}).get(p)) for a in arms) + " |")
    for key, label, fmt in (("train_seconds", "training time (s)", ".0f"), ("wall_seconds", "run wall time (s)", ".0f"),
                            ("pairs_per_second", "generation (pairs/s)", ".1f"), ("peak_rss_mb", "peak RSS (MB)", ".0f")):
        rows.append(f"| {label} | " + " | ".join(_pm(result["summary"][a]["cost"][key], fmt) for a in arms) + " |")
    rows.append("| training TFLOPs | " + " | ".join(_tflops(result["summary"][a]["cost"].get("train_flops")) for a in arms) + " |")
    rows.append("| GFLOPs per pair | " + " | ".join(f"{result['summary'][a]['cost']['flops_per_pair'] / 1e9:.3f}" for a in arms) + " |")
    rows.append("| generator parameters (M) | " + " | ".join(f"{result['summary'][a]['cost']['parameters'] / 1e6:.2f}" for a in arms) + " |")
    for key in sorted({k for a in arms for k in result["summary"][a]["realism"]}):
        rows.append(f"| {key} | " + " | ".join(_pm(result["summary"][a]["realism"].get(key, {})) for a in arms) + " |")
    budget = "; ".join(f"{a}: {b['total']:g} {b['unit']} ({', '.join(f'{k} {v:g}' for k, v in b['stages'].items())})" for a, b in result["budget"].items())
    lines = [
        f"# msaug compare: {' vs '.join(arms)}",
        "",
        f"- domain: {result['domain']}; profile: {result['profile']}; seeds: {result['seeds']}; train fraction: {result['train_fraction']}",
        f"- arms: " + "; ".join(f"{a} = `{p}`" for a, p in result["arms"].items()),
        f"- training budget per arm: {budget}",
        "- every arm: the same real split per seed, the same segmenter and segmenter budget; the real-trained segmenter "
        "is trained once per seed and reused by the other arms where its key (cases, settings, seed) matches",
        *sorted({f"- segmentation metrics computed at: {result['summary'][a]['resolution']}" for a in arms
                 if result["summary"][a].get("resolution")}),
        "",
        f"**Verdict:** {result['verdict']['line']}",
        "",
        head,
        *rows,
        "",
        "![Dice per protocol](dice.png)",
        "",
        "![cost](cost.png)",
        "",
        "![samples](samples.png)",
        "",
    ]
    from msaug.segment.stage_probe import format_stage_summary

    staged = [a for a in arms if result["summary"][a].get("stages")]
    lines += ["## Stages measured on held-out real cases", ""] if staged else []
    lines += [format_stage_summary(result["summary"][a]["stages"], a) for a in staged]
    return "\n".join(lines)



# --- the cost-to-quality curve: one comparison per total training budget ----------------------------


def compare_budgets(options: CompareOptions, budgets: list[str], reporter: Reporter | None = None) -> dict[str, Any]:
    """:func:`compare` once per total training budget (``OUT/budget-<b>/``), then the curve of quality against cost.

    Each budget is a full comparison (same seeds, same real split, same segmenter), so its
    folder resumes like any comparison. ``OUT/curve.json``, ``curve.md`` and ``curve.png`` hold,
    per arm and budget, the headline protocol's Dice (mean ± std over seeds) against the
    training seconds actually spent and the training FLOPs counted (``curve-flops.png``), and say
    at which budget each arm reaches the other arms' best quality.
    """
    reporter = reporter if reporter is not None else PlainReporter(progress=options.show_progress)
    if options.budget is not None:
        raise ConfigError("--budget and --budgets exclude each other; give the budgets as --budgets 120s,240s,480s")
    if len(budgets) < 2:
        raise ConfigError(f"--budgets {','.join(budgets)}: give at least two budgets, e.g. --budgets 120s,240s,480s")
    parsed = [(text.strip(), *parse_budget(text)) for text in budgets]
    if len({unit for _, unit, _ in parsed}) > 1:
        raise ConfigError(f"--budgets {','.join(budgets)}: all in seconds (120s) or all in steps (2000), not both")
    if len({value for _, _, value in parsed}) != len(parsed):
        raise ConfigError(f"--budgets {','.join(budgets)}: each budget once")
    paths = {arm: resolve_arm(arm, options.domain) for arm in options.arms}
    _, out = profile_and_out(options, paths, "-budgets")
    points: list[dict[str, Any]] = []
    for text, unit, value in sorted(parsed, key=lambda b: b[2]):
        folder = out / f"budget-{value:g}{'s' if unit == 'seconds' else 'steps'}"
        reporter.message(f"[bold]budget {escape(text)}[/] ({unit}): {escape(str(folder))}")
        result = compare(replace(options, budget=text, out=folder), reporter)
        points.append({"budget": text, "unit": unit, "value": value, "folder": str(folder), "result": result})
    curve = budget_curve(points)
    write_json(out / "curve.json", curve)
    atomic_write(out / "curve.md", render_curve(curve))
    from msaug.bench.plots import curve_chart

    atomic_write(out / "curve.png", curve_chart(curve))
    if curve["flops_counted"]:
        atomic_write(out / "curve-flops.png", curve_chart(curve, x_key="train_flops"))
    for line in curve["reading"]:
        reporter.message(f"[bold]curve[/]: {escape(line)}")
    return curve


def budget_curve(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm, (training seconds, Dice) at every budget, and which budget reaches the other arms' best Dice."""
    first = points[0]["result"]
    protocol = first["verdict"]["headline_protocol"]
    arms = list(first["summary"])
    series: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for point in points:
        for arm in arms:
            s = point["result"]["summary"][arm]
            series[arm].append({
                "budget": point["budget"],
                "train_seconds": s["cost"]["train_seconds"],
                "train_flops": s["cost"].get("train_flops") or {"mean": None, "std": None, "n": 0},
                "dice": s["quality"][protocol]["dice"],
                "qc_mean_dice": s["realism"].get("qc_mean_dice"),
            })
    reading = []
    for arm in arms:
        for other in arms:
            if other == arm:
                continue
            best = max(series[other], key=lambda p: p["dice"]["mean"] if p["dice"]["mean"] is not None else -1)
            if best["dice"]["mean"] is None:
                continue
            target, spread = best["dice"]["mean"], best["dice"]["std"] or 0.0
            reached = next((p for p in series[arm] if p["dice"]["mean"] is not None
                            and p["dice"]["mean"] >= target - spread - (p["dice"]["std"] or 0.0)), None)
            where = (f"{other}'s best {protocol} Dice ({target:.3f} at {best['budget']}, "
                     f"{best['train_seconds']['mean']:.0f} s of training)")
            if reached is None:
                reading.append(f"{arm} does not reach {where} within the budgets measured")
            else:
                ratio = best["train_seconds"]["mean"] / reached["train_seconds"]["mean"] if reached["train_seconds"]["mean"] else float("nan")
                flops = ""
                if best["train_flops"]["mean"] and reached["train_flops"]["mean"]:
                    flops = (f", {reached['train_flops']['mean'] / 1e12:.3g} TFLOPs: "
                             f"{best['train_flops']['mean'] / reached['train_flops']['mean']:.2f}x the other's training FLOPs")
                reading.append(f"{arm} reaches {where} at {reached['budget']} ({reached['train_seconds']['mean']:.0f} s; "
                               f"{ratio:.2f}x the other's training time{flops})"
                               + (" within the seed spread" if spread else ""))
    return {"protocol": protocol, "seeds": first["seeds"], "domain": first["domain"], "profile": first["profile"],
            "train_fraction": first["train_fraction"], "budgets": [p["budget"] for p in points],
            "folders": {p["budget"]: p["folder"] for p in points}, "series": series, "reading": reading,
            "flops_counted": all(p["train_flops"]["mean"] for ps in series.values() for p in ps)}


def render_curve(curve: dict[str, Any]) -> str:
    arms = list(curve["series"])
    head = ("| budget | " + " | ".join(f"{a}: Dice, {curve['protocol']} | {a}: training s" for a in arms)
            + "".join(f" | {a}: training TFLOPs" for a in arms) + " |")
    rows = [head, "|---|" + "---|---|---|" * len(arms)]
    for i, budget in enumerate(curve["budgets"]):
        cells = []
        for a in arms:
            p = curve["series"][a][i]
            cells += [_pm(p["dice"]), _pm(p["train_seconds"], ".0f")]
        cells += [_tflops(curve["series"][a][i].get("train_flops")) for a in arms]
        rows.append(f"| {budget} | " + " | ".join(cells) + " |")
    return "\n".join([
        f"# msaug compare: cost to quality, {' vs '.join(arms)}",
        "",
        f"- domain: {curve['domain']}; profile: {curve['profile']}; seeds: {curve['seeds']}; train fraction: {curve['train_fraction']}",
        f"- quality: mean foreground Dice of the `{curve['protocol']}` protocol on the real test split (mean ± std over seeds)",
        "- each budget is a full comparison in its own folder: " + "; ".join(f"{b}: `{f}`" for b, f in curve["folders"].items()),
        "",
        *rows,
        "",
        *(f"- {line}" for line in curve["reading"]),
        "",
        "![cost to quality](curve.png)",
        "",
        *(["![cost to quality, FLOPs](curve-flops.png)", ""] if curve.get("flops_counted") else []),
    ])
