"""The run report: report.json, report.md, grid.png and per-stage loss curves."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageDraw

from msaug.io import atomic_write, png_bytes
from msaug.label_encoding import foreground_channels
from msaug.pipeline.records import DataSummary, Evaluation, GenerationRecord, LossCurve, RunReport, StageRecord
from msaug.progress import Reporter, escape
from msaug.sample import Dataset, DataSpec, Sample

if TYPE_CHECKING:
    from msaug.pipeline.runner import Prepared, RunState

PALETTE = np.array(
    [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)],
    dtype=np.float32,
)
MAX_METRIC_MAPS = 500


def overlay(image: np.ndarray, label: np.ndarray, encoding: str, alpha: float = 0.45) -> np.ndarray:
    """``[C,H,W]`` image in [0,1] and ``[K,H,W]`` label to an RGB uint8 overlay ``[H,W,3]``."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    rgb = np.moveaxis(rgb, 0, -1).astype(np.float32) * 255
    for n, k in enumerate(foreground_channels(label.shape[0], encoding)):  # background is left as it is
        mask = label[k] > 0.5
        colour = PALETTE[n % len(PALETTE)]
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
    return np.clip(rgb, 0, 255).astype(np.uint8)


def sample_grid(pairs: list[tuple[np.ndarray, np.ndarray]], encoding: str, columns: int = 8) -> np.ndarray:
    """Image row above overlay row, ``columns`` pairs per band."""
    if not pairs:
        return np.zeros((8, 8, 3), np.uint8)
    h, w = pairs[0][0].shape[1:]
    bands = math.ceil(len(pairs) / columns)
    cols = min(columns, len(pairs))
    grid = np.full((bands * 2 * (h + 2), cols * (w + 2), 3), 32, np.uint8)
    for n, (image, label) in enumerate(pairs):
        band, col = divmod(n, columns)
        y, x = band * 2 * (h + 2), col * (w + 2)
        plain = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
        grid[y : y + h, x : x + w] = np.clip(np.moveaxis(plain, 0, -1) * 255, 0, 255).astype(np.uint8)
        grid[y + h + 2 : y + 2 * h + 2, x : x + w] = overlay(image, label, encoding)
    return grid


def read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
    return rows


def loss_series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        step = row.get("step")
        if step is None:
            continue
        for key, value in row.items():
            if key != "step" and "loss" in key and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((float(step), float(value)))
    return series


def plot_curves(series: dict[str, list[tuple[float, float]]], title: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """A plain line chart of loss curves (Pillow only; no plotting dependency)."""
    w, h = size
    img = PILImage.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 150, 30, h - 30
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    draw.text((left, 8), title, fill=(0, 0, 0))
    points = [p for values in series.values() for p in values]
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
        draw.text((4, top), f"{y1:.3g}", fill=(0, 0, 0))
        draw.text((4, bottom - 10), f"{y0:.3g}", fill=(0, 0, 0))
        draw.text((left, bottom + 6), f"step {x0:.0f}", fill=(0, 0, 0))
        draw.text((right - 70, bottom + 6), f"step {x1:.0f}", fill=(0, 0, 0))
        for n, (name, values) in enumerate(sorted(series.items())):
            colour = tuple(int(c) for c in PALETTE[n % len(PALETTE)])
            line = [(left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)) for x, y in values]
            if len(line) > 1:
                draw.line(line, fill=colour, width=2)
            draw.text((right + 10, top + 14 * n), name, fill=colour)
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def label_metrics(registries: Any, spec: DataSpec, labels: torch.Tensor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in registries.label_metrics.for_domain(spec.domain):
        out[name] = {k: (round(float(v), 5) if isinstance(v, (int, float)) else v) for k, v in fn(labels, spec).items()}
    return out


def real_label_maps(train: Dataset | list[Sample], spec: DataSpec) -> torch.Tensor:
    """``[N, K, S, S]``: the first :data:`MAX_METRIC_MAPS` real maps at the pairs' size ``spec.size``.

    They are shrunk by the data's downsampling policy (``spec.label``), as the stages' own targets
    were, so the real and the synthetic label metrics describe maps made the same way.
    """
    return torch.stack([spec.label.view(train[i]) for i in range(min(len(train), MAX_METRIC_MAPS))])


def write_report(prepared: Prepared, state: RunState, reporter: Reporter, started: float, evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write report.json (a :class:`~msaug.pipeline.records.RunReport`), report.md, grid.png and loss curves from what the phases returned; trains nothing.

    Returns the report as JSON-able values (what report.json holds).

    ``evaluation`` is :func:`msaug.pipeline.evaluate.evaluate_run`'s result (``None``: the run
    was not evaluated); ``started`` is the run's ``time.monotonic()`` start.
    """
    from msaug.synthetic import SyntheticDataset

    run = state.folder
    config = prepared.config
    spec = prepared.chain.product_spec(prepared.spec)
    synthetic = SyntheticDataset(run.synthetic)
    shown = [synthetic[i] for i in range(min(16, len(synthetic)))]
    grid = sample_grid([(s.image, s.label) for s in shown if s.image is not None], spec.encoding)
    atomic_write(run.grid, png_bytes(grid))

    stages = []
    for info, cs in zip(state.stage_info, prepared.chain.stages):
        folder = run.stage(cs.folder)
        series = loss_series(read_metrics(folder.metrics))
        if series:
            atomic_write(folder.losses, plot_curves(series, f"{cs.use} losses"))
        stages.append(
            StageRecord(
                name=cs.name,
                use=cs.use,
                input=info.get("input"),
                outputs=info.get("outputs"),
                seconds=info.get("seconds"),
                budget=info.get("budget"),
                summary=info.get("summary", {}),
                losses={k: LossCurve(first=v[0][1], last=v[-1][1], steps=int(v[-1][0])) for k, v in series.items()},
            )
        )

    real_labels = real_label_maps(state.train if state.train is not None else [], spec)
    n_syn = min(len(synthetic), MAX_METRIC_MAPS)
    syn_labels = torch.stack([torch.as_tensor(synthetic[i].label) for i in range(n_syn)]) if n_syn else real_labels[:0]
    metrics = {"real": label_metrics(prepared.registries, spec, real_labels)}
    if n_syn:
        metrics["synthetic"] = label_metrics(prepared.registries, spec, syn_labels)

    gen = state.generation
    evaluated = {} if evaluation is None else {"evaluation": Evaluation.model_validate(evaluation)}  # absent, not null, when not evaluated
    seconds = time.monotonic() - started
    record = RunReport(
        pipeline=config.name,
        profile=prepared.resolved.profile,
        sets=list(prepared.resolved.sets),
        device=str(state.device),
        data=DataSummary(
            dataset=config.data.dataset,
            size=config.data.size,
            train=len(state.train or []),
            test=len(state.test or []),
            classes=list(spec.classes),
            encoding=spec.encoding,
        ),
        stages=stages,
        generate=GenerationRecord(
            count=len(synthetic),
            seconds=round(gen.seconds, 3) if gen else None,
            pairs_per_second=round(gen.pairs_per_second, 3) if gen and gen.written else None,
            seed=config.generate.seed,
        ),
        label_metrics=metrics,
        **evaluated,
        seconds_total=round(seconds, 2),
    )
    record.write(run.report_json)
    report = record.to_json()
    if evaluation is not None:
        report["evaluation"] = evaluation  # the evaluate phase's own result (the record holds an equal copy)
    atomic_write(run.report_md, render_markdown(report))
    reporter.message(f"[bold green]Done[/] in {seconds:.0f} s: {len(synthetic)} pairs in {escape(str(run.synthetic))}, report {escape(str(run.report_md))}")
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# msaug run report: {report['pipeline']}",
        "",
        f"- profile: {report['profile'] or '(none)'}; device: {report['device']}; total time: {report['seconds_total']:.0f} s",
        f"- data: {report['data']['dataset']}, {report['data']['train']} train / {report['data']['test']} test cases; stages learn and generate at {report['data']['size']} px",
        f"- classes ({report['data']['encoding']}): {', '.join(report['data']['classes'])}",
    ]
    resolution = (report.get("evaluation") or {}).get("resolution")
    if resolution:
        lines.append(f"- segmentation metrics computed at: {resolution['description']} (segmenter {resolution['segmenter_size']} px, "
                     + (f"{resolution['patch']} px patches)" if resolution.get("patch") else "whole images)"))
    lines += [
        "",
        "![samples](grid.png)",
        "",
        "## Stages",
        "",
        "| # | stage | input → output | budget | time (s) | training TFLOPs | losses (first → last) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, st in enumerate(report["stages"], 1):
        budget = st.get("budget") or {}
        b = " / ".join(f"{v} {k}" for k, v in budget.items() if v is not None) or "–"
        losses = "; ".join(f"{k} {v['first']:.3g} → {v['last']:.3g}" for k, v in st["losses"].items()) or "–"
        flops = (st.get("summary") or {}).get("train_flops")
        tflops = f"{flops / 1e12:.3g}" if isinstance(flops, (int, float)) else "–"
        lines.append(f"| {i} | {st['use']} | {st['input']} → {', '.join(st['outputs'] or [])} | {b} | {_fmt(st['seconds'])} | {tflops} | {losses} |")
    g = report["generate"]
    lines += ["", "## Generation", "", f"{g['count']} pairs (seed {g['seed']})" + (f", {g['pairs_per_second']:.2f} pairs/s" if g.get("pairs_per_second") else ""), ""]
    metrics = report.get("label_metrics", {})
    if metrics.get("real"):
        lines += ["## Label maps: real vs synthetic", "", "| metric | real (train) | synthetic |", "|---|---|---|"]
        for group, values in metrics["real"].items():
            for key, value in values.items():
                syn = metrics.get("synthetic", {}).get(group, {}).get(key, "–")
                lines.append(f"| {group}.{key} | {_fmt(value)} | {_fmt(syn)} |")
        lines.append("")
    evaluation = report.get("evaluation")
    if evaluation:
        lines += ["## Segmentation evaluation", ""]
        try:
            from msaug.segment.evaluate import format_markdown

            lines.append(format_markdown(evaluation))
        except ImportError:
            lines.append("```\n" + json.dumps(evaluation, indent=2) + "\n```")
        if evaluation.get("stages"):
            from msaug.segment.stage_probe import format_stage_table

            lines.append(format_stage_table(evaluation["stages"]))
    return "\n".join(lines) + "\n"
