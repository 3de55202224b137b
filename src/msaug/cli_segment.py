"""``msaug segment ...`` and ``msaug export ...``: thin click shells over :mod:`msaug.segment`.

The main ``msaug`` group attaches :data:`segment` and :data:`export` and turns
:class:`msaug.MsaugError` into a one-line message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from msaug.console import RichReporter, make_console
from msaug.errors import ConfigError

console = make_console(stderr=True)
out_console = make_console()


def _data_options(f: Any) -> Any:
    options = [
        click.option("--data", "data_name", required=True, help="Registered dataset name (msaug datasets list), e.g. xray.phantom."),
        click.option("--root", type=click.Path(path_type=Path), default=None, help="Dataset folder (real datasets, folder)."),
        click.option("--size", type=click.IntRange(min=8), default=128, show_default=True, help="Side at which samples are loaded."),
        click.option("--count", type=click.IntRange(min=1), default=None, help="Phantoms: cases to make; real data: use at most this many."),
        click.option("--test-share", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True, help="Share of cases held out for testing."),
        click.option("--data-seed", type=int, default=0, show_default=True, help="Phantom seed and split shuffle seed."),
        click.option("--split-by", type=click.Choice(["shuffle", "official"]), default="shuffle", show_default=True,
                     help="official: the dataset's published split (DRIVE: training 21-40 / test 01-20); --test-share is then unused."),
        click.option("--group-by", default=None, metavar="TABLE.csv:COLUMN|REGEX",
                     help="Keep groups (patients) whole in the shuffle split, as data.split.group_by."),
        click.option("--classes", default=None, help="folder dataset: comma-separated class names, background first."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option (repeatable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class SizeOrNative(click.ParamType):
    """A segmenter size: an int of at least 8, or ``native``."""

    name = "INT|native"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or value == "native":
            return value
        try:
            size = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither 'native' nor an int", param, ctx)
        if size < 8:
            self.fail(f"{size} is below 8 px", param, ctx)
        return size


class ProtocolChoice(click.Choice):
    """The segmentation protocols (``msaug.segment.config.PROTOCOLS``), read when a command needs them.

    Importing the segment package is slow, so the names are not read when the CLI starts.
    """

    def __init__(self) -> None:
        self.case_sensitive = True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from msaug.segment.config import PROTOCOLS

        return PROTOCOLS


def _window_options(f: Any) -> Any:
    """Patch training and sliding-window prediction, as a pipeline's ``evaluate.segmenter.patch`` / ``window_overlap``."""
    options = [
        click.option("--patch", type=click.IntRange(min=16), default=None,
                     help="Train on random patches of this side and predict by sliding windows of it (default: whole images)."),
        click.option("--window-overlap", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="Sliding-window prediction: share of the window neighbours overlap [default: 0.25]."),
        click.option("--metrics-at", type=click.Choice(["native", "segmenter"]), default="native", show_default=True,
                     help="Test metrics on each image's original grid (inside its ROI), or at the segmenter's square."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def load_real_split(data_name: str, root: Path | None, size: int, count: int | None, test_share: float, data_seed: int,
                    options: tuple[str, ...], split_by: str = "shuffle", group_by: str | None = None,
                    classes: str | None = None) -> tuple[Any, Any]:
    """``(train, test)`` views of a registered dataset, split as a pipeline's ``data.split`` would.

    The views read cases on access and keep the dataset's native samples, so segmenters can be
    trained and scored at the original resolution.
    """
    from pydantic import ValidationError

    from msaug.data import DataConfig, SplitConfig, load_dataset, split_dataset
    from msaug.pipeline.config import parse_set
    from msaug.sample import SubsetDataset

    try:
        split = (SplitConfig(by="official") if split_by == "official"
                 else SplitConfig(train=1.0 - test_share, test=test_share, seed=data_seed, group_by=group_by))
    except ValidationError as exc:
        raise ConfigError(f"--group-by {group_by!r}: {exc.errors()[0]['msg']}") from None
    config = DataConfig(
        dataset=data_name, root=root, size=size, count=count, seed=data_seed, split=split,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        options=dict(parse_set(o) for o in options),
    )
    dataset = load_dataset(config)
    check = getattr(dataset, "check", None)
    if callable(check):
        check()
    chosen = split_dataset(dataset, config)
    return SubsetDataset(dataset, chosen.train), SubsetDataset(dataset, chosen.test)


def _device(name: str) -> Any:
    from msaug.train.device import resolve_device

    return resolve_device(name)


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    from rich.table import Table

    from msaug.segment.metrics import METRICS

    table = Table(title=title)
    table.add_column("class")
    for m in METRICS:
        table.add_column(m, justify="right")

    def cell(stat: dict[str, Any]) -> str:
        return "n/a" if stat["mean"] is None else f"{stat['mean']:.3f}±{stat['std']:.3f}"

    for name, row in metrics["classes"].items():
        table.add_row(name, *(cell(row[m]) for m in METRICS))
    table.add_row("[bold]mean (foreground)[/]", *(cell(metrics["mean"][m]) for m in METRICS))
    out_console.print(table)


@click.group()
def segment() -> None:
    """Train and evaluate segmenters; score generated pairs."""


@segment.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def segment_list(as_json: bool) -> None:
    """List the registered segmenter architectures."""
    from msaug.plugins import get_registries

    entries = get_registries().segmenters.entries()
    if as_json:
        out_console.print_json(json.dumps([{"name": e.name, "plugin": e.plugin, "description": e.description} for e in entries]))
        return
    for e in entries:
        out_console.print(f"[bold]{e.name}[/]  {e.description}  [dim]({e.plugin})[/]", highlight=False)


@segment.command("train")
@_data_options
@click.option("--protocol", type=ProtocolChoice(), default="real", show_default=True)
@click.option("--synthetic", type=click.Path(path_type=Path), default=None, help="Synthetic dataset folder (RUN/synthetic) for synth, synth_finetune, mix.")
@click.option("--arch", default="unet", show_default=True, help="Architecture (msaug segment list).")
@click.option("--encoder", default="tu-resnet18", show_default=True, help="smp encoder, or any timm encoder as tu-NAME.")
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Local encoder/network weights file; nothing is downloaded.")
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--seg-size", type=SizeOrNative(), default=None,
              help="Side of the segmenter's square: an int, or native (the largest real training case's square side; default: --size).")
@_window_options
@click.option("--mix-ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="mix: share of synthetic pairs per batch.")
@click.option("--qc-min-dice", type=click.FloatRange(0, 1), default=None, help="Drop synthetic pairs whose QC Dice is below this.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (checkpoint, result.json); reruns resume.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def segment_train(data_name: str, root: Path | None, size: int, count: int | None, test_share: float, data_seed: int,
                  split_by: str, group_by: str | None, classes: str | None, options: tuple[str, ...], protocol: str, synthetic: Path | None, arch: str, encoder: str, weights: Path | None,
                  steps: int, batch_size: int, lr: float, seg_size: int | str | None, patch: int | None,
                  window_overlap: float | None, metrics_at: str, mix_ratio: float, qc_min_dice: float | None,
                  seed: int, out: Path, device: str, quiet: bool) -> None:
    """Train a segmenter under one protocol and test it on the real test split."""
    from msaug.pipeline.schema import EvaluateConfig, SegmenterConfig
    from msaug.segment.evaluate import evaluate_pipeline, format_markdown

    if protocol != "real" and synthetic is None:
        raise ConfigError(f"--protocol {protocol} needs --synthetic SYNTH_DIR (a synthetic dataset folder)")
    train, test = load_real_split(data_name, root, size, count, test_share, data_seed, options, split_by, group_by, classes)
    synth = open_synthetic(synthetic, train.spec) if synthetic is not None else None
    window = {} if window_overlap is None else {"window_overlap": window_overlap}
    config = EvaluateConfig(
        segmenter=SegmenterConfig(arch=arch, encoder=encoder, weights=weights, steps=steps, batch_size=batch_size, lr=lr,
                                  size=seg_size, patch=patch, **window),
        protocols=[protocol], mix_ratio=mix_ratio, qc_min_dice=qc_min_dice, metrics_at=metrics_at,  # type: ignore[arg-type]
    )
    result = evaluate_pipeline(config, train.spec, train, test, synth, out, _device(device), seed, show_progress=not quiet,
                               reporter=RichReporter(console, progress=not quiet))
    _print_metrics(f"{protocol}: {len(test)} test images, {result['resolution']['description']}", result["protocols"][protocol]["metrics"])
    from msaug.io import atomic_write

    atomic_write(out / "report.md", format_markdown(result))
    console.print(f"checkpoint: {out / protocol / 'checkpoint'}; results: {out / 'evaluation.json'}, {out / 'report.md'}")


def open_synthetic(path: Path, spec: Any = None) -> Any:
    """A synthetic dataset folder, checked against the real data's classes when given."""
    from msaug.errors import DataError
    from msaug.synthetic import SyntheticDataset

    dataset = SyntheticDataset(path)
    if spec is not None and (tuple(dataset.spec.classes) != tuple(spec.classes) or dataset.spec.encoding != spec.encoding
                             or dataset.spec.channels != spec.channels):
        raise DataError(
            f"{path}: synthetic classes {list(dataset.spec.classes)} ({dataset.spec.encoding}, {dataset.spec.channels} ch) "
            f"do not match the real data's {list(spec.classes)} ({spec.encoding}, {spec.channels} ch)"
        )
    return dataset


@segment.command("eval")
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True, help="Checkpoint folder written by segment train.")
@_data_options
@click.option("--split", type=click.Choice(["test", "train", "all"]), default="test", show_default=True)
@_window_options
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def segment_eval(checkpoint: Path, data_name: str, root: Path | None, size: int, count: int | None, test_share: float,
                 data_seed: int, split_by: str, group_by: str | None, classes: str | None, options: tuple[str, ...], split: str, patch: int | None, window_overlap: float | None,
                 metrics_at: str, as_json: bool, device: str) -> None:
    """Evaluate a trained segmenter on a real dataset split (metrics inside the ROI).

    --patch and --window-overlap change the sliding window (default: the checkpoint's training patch).
    """
    from dataclasses import replace

    from msaug.sample import SubsetDataset
    from msaug.segment.data import square_tensors
    from msaug.segment.evaluate import native_test_metrics, resolution_summary, test_metrics
    from msaug.segment.segmenter import Segmenter

    segmenter = Segmenter.load(checkpoint, _device(device))
    if patch is not None or window_overlap is not None:
        segmenter.info = replace(segmenter.info, patch=patch if patch is not None else segmenter.info.patch,
                                 window_overlap=window_overlap if window_overlap is not None else segmenter.info.window_overlap)
    train, test = load_real_split(data_name, root, size, count, test_share, data_seed, options, split_by, group_by, classes)
    if (tuple(train.spec.classes), train.spec.encoding) != (segmenter.info.classes, segmenter.info.encoding):
        raise ConfigError(
            f"{checkpoint}: the segmenter predicts {list(segmenter.info.classes)} ({segmenter.info.encoding}), "
            f"dataset {data_name!r} has {list(train.spec.classes)} ({train.spec.encoding})"
        )
    chosen = {"test": test, "train": train, "all": SubsetDataset(train.dataset, [*train.indices, *test.indices])}[split]
    if len(chosen) == 0:
        raise ConfigError(f"the {split} split of {data_name!r} is empty; change --test-share or --split")
    if metrics_at == "native":
        metrics = native_test_metrics(segmenter, chosen)
    else:
        metrics = test_metrics(segmenter, square_tensors(chosen, segmenter.info.size, what=f"{data_name} {split} split"))
    resolution = resolution_summary(metrics_at, segmenter.info, chosen)
    metrics = {**metrics, "resolution": resolution}
    if as_json:
        out_console.print_json(json.dumps(metrics))
    else:
        _print_metrics(f"{segmenter}: {data_name} {split} split, {len(chosen)} images, {resolution['description']}", metrics)


@segment.command("qc")
@click.argument("synthetic_dir", type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True, help="A segmenter trained on real data (protocol real).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def segment_qc(synthetic_dir: Path, checkpoint: Path, device: str) -> None:
    """Score every generated pair by the Dice of a real-data segmenter; store qc_dice in the manifest."""
    from msaug.segment.qc import annotate_manifest, score_pairs, scores_by_index
    from msaug.segment.segmenter import Segmenter

    segmenter = Segmenter.load(checkpoint, _device(device))
    dataset = open_synthetic(synthetic_dir, segmenter.info.spec)
    scores = score_pairs(segmenter, dataset)
    annotate_manifest(synthetic_dir, scores_by_index(dataset, scores))
    low = sorted(scores)[: max(1, len(scores) // 10)]
    out_console.print(
        f"{len(scores)} pairs scored: mean QC Dice {sum(scores) / len(scores):.3f}, lowest decile up to {low[-1]:.3f}; "
        f"written to {Path(synthetic_dir) / 'manifest.jsonl'}", highlight=False,
    )


@click.group()
def export() -> None:
    """Export a synthetic dataset for other frameworks."""


@export.command("nnunet")
@click.argument("synthetic_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="nnUNet_raw folder; DatasetNNN_NAME is created inside.")
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", required=True, help="Dataset name (letters, digits, '-', '_').")
@click.option("--qc-min-dice", type=click.FloatRange(0, 1), default=None, help="Only pairs whose manifest qc_dice reaches this.")
@click.option("--with-real", "with_real", default=None, metavar="DATASET", help="Also add this registered dataset's training split.")
@click.option("--root", type=click.Path(path_type=Path), default=None, help="--with-real: dataset folder.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="--with-real: cases (phantoms) or at most this many.")
@click.option("--test-share", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True, help="--with-real: held-out share, written to imagesTs/labelsTs (never to imagesTr).")
@click.option("--data-seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset with this id that msaug exported (never another).")
@click.option("--overlaps", type=click.Choice(["regions", "split"]), default="regions", show_default=True,
              help="Multilabel data: regions = one region-based dataset (nnU-Net predicts one value per pixel, so an overlapping "
              "pixel keeps only the last region); split = one dataset per group of channels that never overlap (ids from "
              "--dataset-id on) and NAME.split.json mapping channels to datasets, so no pixel loses a label.")
def export_nnunet_cmd(synthetic_dir: Path, out: Path, dataset_id: int, name: str, qc_min_dice: float | None, with_real: str | None,
                      root: Path | None, count: int | None, test_share: float, data_seed: int, overwrite: bool, overlaps: str) -> None:
    """Write an nnU-Net v2 raw dataset (imagesTr, labelsTr, dataset.json)."""
    from msaug.nnunet import validate_nnunet
    from msaug.segment.export import export_nnunet, export_nnunet_split
    from msaug.synthetic import SyntheticDataset

    real = real_test = None
    if with_real:
        size = SyntheticDataset(synthetic_dir).spec.size
        real, real_test = load_real_split(with_real, root, size, count, test_share, data_seed, ())
    if overlaps == "split":
        folders, index = export_nnunet_split(synthetic_dir, out, dataset_id, name, qc_min_dice, real, overwrite, real_test)
    else:
        folders, index = [export_nnunet(synthetic_dir, out, dataset_id, name, qc_min_dice, real, overwrite, real_test)], None
    for folder in folders:
        problems = validate_nnunet(folder)
        if problems:  # a bug in the exporter, not a user error
            raise RuntimeError(f"exported dataset fails validation: {problems[:5]}")
        meta = json.loads((folder / "dataset.json").read_text())
        classes = ", ".join(name for name in meta["labels"] if name != "background")
        tests = len(list((folder / "imagesTs").glob("*_0000.png")))
        out_console.print(f"wrote {folder} ({meta['numTraining']} training cases" + (f", {tests} test cases in imagesTs" if tests else "")
                          + (f"; {classes})" if index else ")"), highlight=False)
    if index is not None:
        out_console.print(f"channel map: {index} (no pixel lost a label)", highlight=False)


@export.command("merge-split")
@click.argument("channel_map", type=click.Path(path_type=Path))
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the merged bit-mask label maps.")
def export_merge_split_cmd(channel_map: Path, folders: tuple[Path, ...], out: Path) -> None:
    """Merge nnU-Net predictions of --overlaps split datasets into msaug bit-mask label maps.

    CHANNEL_MAP is the NAME.split.json the split export wrote; FOLDERS hold the PNG label maps
    (predictions) of its datasets, one folder per dataset in the map's order.
    """
    from msaug.segment.export import merge_split_predictions

    written = merge_split_predictions(channel_map, list(folders), out)
    out_console.print(f"wrote {len(written)} bit-mask label maps (bit k = channel k) to {out}", highlight=False)


@export.command("monai")
@click.argument("synthetic_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Datalist JSON file to write.")
@click.option("--qc-min-dice", type=click.FloatRange(0, 1), default=None, help="Only pairs whose manifest qc_dice reaches this.")
@click.option("--overwrite", is_flag=True, help="Replace an existing datalist that msaug wrote (never another file).")
def export_monai_cmd(synthetic_dir: Path, out: Path, qc_min_dice: float | None, overwrite: bool) -> None:
    """Write a MONAI datalist JSON (load with monai.data.load_decathlon_datalist)."""
    from msaug.segment.export import export_monai

    path = export_monai(synthetic_dir, out, qc_min_dice, overwrite)
    count = json.loads(path.read_text())["numTraining"]
    out_console.print(f"wrote {path} ({count} pairs)", highlight=False)
