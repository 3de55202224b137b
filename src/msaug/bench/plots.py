"""PNG plots of a comparison (Pillow only): bars with error bars, side-by-side sample grids."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageDraw

from msaug.io import atomic_write
from msaug.pipeline.report import PALETTE


def bar_chart(groups: list[str], series: dict[str, list[tuple[float | None, float | None]]], title: str, size: tuple[int, int] = (720, 380)) -> bytes:
    """Grouped bars: one group per entry of ``groups``, one bar per series, (mean, std) each."""
    w, h = size
    img = PILImage.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 140, 30, h - 40
    draw.text((left, 8), title, fill=(0, 0, 0))
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0))
    values = [m + (s or 0) for vals in series.values() for m, s in vals if m is not None]
    ymax = max(values) * 1.1 if values else 1.0
    ymax = ymax if ymax > 0 else 1.0
    draw.text((4, top), f"{ymax:.3g}", fill=(0, 0, 0))
    draw.text((4, bottom - 10), "0", fill=(0, 0, 0))
    n_series = max(1, len(series))
    group_w = (right - left) / max(1, len(groups))
    bar_w = group_w * 0.8 / n_series
    for g, group in enumerate(groups):
        x0 = left + g * group_w + group_w * 0.1
        draw.text((x0, bottom + 6), group[:18], fill=(0, 0, 0))
        for s, (name, vals) in enumerate(series.items()):
            mean, std = vals[g]
            if mean is None:
                continue
            colour = _colour(s)
            bx = x0 + s * bar_w
            y = bottom - mean / ymax * (bottom - top)
            draw.rectangle([bx, y, bx + bar_w - 2, bottom], fill=colour)
            if std:
                cx = bx + bar_w / 2
                y_lo, y_hi = bottom - (mean - std) / ymax * (bottom - top), bottom - (mean + std) / ymax * (bottom - top)
                draw.line([(cx, y_lo), (cx, y_hi)], fill=(0, 0, 0), width=2)
                draw.line([(cx - 4, y_hi), (cx + 4, y_hi)], fill=(0, 0, 0), width=2)
                draw.line([(cx - 4, y_lo), (cx + 4, y_lo)], fill=(0, 0, 0), width=2)
    _legend(draw, list(series), right, top)
    return _png(img)


def side_by_side(grids: dict[str, Path]) -> bytes | None:
    """Stack each arm's sample grid under a caption with its name."""
    images = {name: PILImage.open(path).convert("RGB") for name, path in grids.items() if path.is_file()}
    if not images:
        return None
    width = max(im.width for im in images.values())
    height = sum(im.height + 20 for im in images.values())
    canvas = PILImage.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, im in images.items():
        draw.text((4, y + 4), name, fill=(0, 0, 0))
        canvas.paste(im, (0, y + 20))
        y += im.height + 20
    return _png(canvas)


def write_plots(out: Path, result: dict[str, Any], grids: dict[str, Path]) -> None:
    """dice.png, cost.png and samples.png (``grids``: each arm's sample grid, side by side) into ``out``."""
    summary = result["summary"]
    protocols = result["protocols"]
    dice = {arm: [(s["quality"][p]["dice"]["mean"], s["quality"][p]["dice"]["std"]) for p in protocols] for arm, s in summary.items()}
    atomic_write(out / "dice.png", bar_chart(protocols, dice, "mean foreground Dice on the real test split (mean ± std over seeds)"))
    cost = {
        arm: [
            (s["cost"]["train_seconds"]["mean"], s["cost"]["train_seconds"]["std"]),
            (s["cost"]["flops_per_pair"] / 1e9, None),
            (s["cost"]["peak_rss_mb"]["mean"] / 1000 if s["cost"]["peak_rss_mb"]["mean"] else None, (s["cost"]["peak_rss_mb"]["std"] or 0) / 1000),
        ]
        for arm, s in summary.items()
    }
    atomic_write(out / "cost.png", bar_chart(["train s", "GFLOPs/pair", "peak RSS GB"], cost, "cost per arm"))
    blob = side_by_side(grids)
    if blob:
        atomic_write(out / "samples.png", blob)


#: the curve's x axes: key of a series point, its title, and how an axis value is written
CURVE_AXES = {
    "train_seconds": ("training seconds", lambda v: f"{v:.0f} s"),
    "train_flops": ("training FLOPs", lambda v: f"{v / 1e12:.3g} TFLOPs"),
}


def curve_chart(curve: dict[str, Any], size: tuple[int, int] = (720, 400), x_key: str = "train_seconds") -> bytes:
    """Quality against training cost (``x_key``: seconds or FLOPs): one line per arm, a point per budget with its seed spread."""
    title, label = CURVE_AXES[x_key]
    w, h = size
    img = PILImage.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 150, 30, h - 40
    draw.text((left, 8), f"{curve['protocol']} Dice on the real test split against {title} (mean ± std over seeds)", fill=(0, 0, 0))
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0))

    def placed(series: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
        return [(p[x_key]["mean"], p["dice"]["mean"], p["dice"]["std"] or 0.0) for p in series
                if p["dice"]["mean"] is not None and (p.get(x_key) or {}).get("mean")]

    points = [xy for series in curve["series"].values() for xy in placed(series)]
    if points:
        x_max = max(x for x, _, _ in points) * 1.05
        y_lo = max(0.0, min(y - s for _, y, s in points) - 0.02)
        y_hi = min(1.0, max(y + s for _, y, s in points) + 0.02)
        y_hi = y_hi if y_hi > y_lo else y_lo + 0.1
        draw.text((4, top), f"{y_hi:.3f}", fill=(0, 0, 0))
        draw.text((4, bottom - 10), f"{y_lo:.3f}", fill=(0, 0, 0))
        draw.text((right - 90, bottom + 6), label(x_max), fill=(0, 0, 0))
        draw.text((left, bottom + 6), label(0.0), fill=(0, 0, 0))

        def at(x: float, y: float) -> tuple[float, float]:
            return left + x / x_max * (right - left), bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)

        for s, series in enumerate(curve["series"].values()):
            colour = _colour(s)
            xy = placed(series)
            if len(xy) > 1:
                draw.line([at(x, y) for x, y, _ in xy], fill=colour, width=2)
            for x, y, spread in xy:
                cx, cy = at(x, y)
                draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour)
                if spread:
                    draw.line([at(x, y - spread), at(x, y + spread)], fill=colour, width=1)
        _legend(draw, list(curve["series"]), right, top)
    return _png(img)


def _colour(s: int) -> tuple[int, ...]:
    return tuple(int(c) for c in PALETTE[s % len(PALETTE)])


def _legend(draw: ImageDraw.ImageDraw, names: list[str], right: int, top: int) -> None:
    """A colour swatch and the name of each series, right of the plot area."""
    for s, name in enumerate(names):
        draw.rectangle([right + 10, top + 16 * s, right + 20, top + 16 * s + 10], fill=_colour(s))
        draw.text((right + 26, top + 16 * s), name, fill=(0, 0, 0))


def _png(img: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
