"""The ``evaluate:`` block of a pipeline: train segmenters under each protocol and report.

:func:`evaluate_pipeline` trains one segmenter per protocol with identical budgets, tests
each on the real test split, and adds the quality figures of the synthetic data (pair
QC, image and label realism, memorisation audit). Every protocol's result and checkpoint
is written atomically under ``out_dir/<protocol>/`` with a key of everything it depends
on, so an interrupted evaluation resumes where it stopped.

Resolution, as published results are measured: real cases are taken on their original grid
(:func:`msaug.sample.native_view`), fitted to the segmenter's square (``segmenter.size``:
``native`` keeps the largest case's square side, e.g. 584 for DRIVE, so nothing is
resampled) and, with ``segmenter.patch``, trained on random crops and predicted by sliding
windows. Test metrics are computed by default on each test image's original grid, inside
its ROI (the fundus FOV) and the pixels its square holds (:func:`native_test_metrics`); the
result says at which resolution (``result["resolution"]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msaug.data import sample_ids
from msaug.errors import ConfigError, DataError
from msaug.io import read_json, write_json
from msaug.label_encoding import harden, probabilities
from msaug.progress import Reporter
from msaug.segment.config import NEEDS_SYNTHETIC, EvaluateConfig, SegmenterConfig
from msaug.resize import resize_image
from msaug.sample import Dataset, DataSpec, native_crops, native_view
from msaug.segment.audit import memorisation_audit
from msaug.segment.data import SegmentationTensors, native_square_side, square_tensors, to_tensors
from msaug.segment.label_realism import label_realism
from msaug.segment.metrics import batch_metrics, image_metrics, summarize
from msaug.segment.paired import format_paired, paired_against
from msaug.segment.protocols import run_protocol, validation_split
from msaug.segment.qc import score_pairs, select
from msaug.segment.realism import image_realism
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.train import TrainSettings
from msaug.train import distributed

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"
CHECKPOINT_DIR = "checkpoint"


def test_metrics(segmenter: Segmenter, test: SegmentationTensors, batch_size: int = 16) -> dict[str, Any]:
    """Per-class and mean metrics of ``segmenter`` on test tensors (inside their ROI), at the tensors' size."""
    probs, pred = segmenter.predict(test.images, batch_size)
    per_image = batch_metrics(probs, pred, test.labels, test.roi)
    return summarize(per_image, segmenter.info.classes, segmenter.info.encoding)


def native_test_metrics(segmenter: Segmenter, dataset: Dataset, batch_size: int = 16) -> dict[str, Any]:
    """Per-class and mean metrics of ``segmenter`` on each case of ``dataset`` at its original resolution.

    Each image is fitted to its square as in training, predicted at the segmenter's size,
    mapped back onto the original grid (:meth:`msaug.resize.SquareGeometry.from_square`, soft
    maps, then hardened) and scored against the original label inside its ROI and the pixels
    the square holds. Images may differ in size: they are predicted one by one.
    """
    info = segmenter.info
    per_image = []
    for i in range(len(dataset)):
        sample, geometry = native_view(dataset, i)
        if sample.image is None:
            raise DataError(f"test case {sample.id!r} has no image; segmenters are tested on image/label pairs")
        image = torch.as_tensor(np.asarray(sample.image), dtype=torch.float32)
        label = torch.as_tensor(np.asarray(sample.label), dtype=torch.float32)
        square = resize_image(geometry.to_square(image), info.size)[None]
        logits = segmenter.square_logits(square, batch_size).cpu()
        probs = geometry.from_square(probabilities(logits, info.encoding)[0])
        pred = harden(probs, info.encoding)
        roi = geometry.covered()
        if sample.roi is not None:
            roi = roi & torch.as_tensor(np.asarray(sample.roi), dtype=torch.bool)
        per_image.append(image_metrics(probs, pred, label, roi))
    return summarize(per_image, info.classes, info.encoding)


def test_scorer(metrics_at: str, test: Dataset, size: int) -> Callable[[Segmenter], dict[str, Any]]:
    """How every protocol's segmenter is scored on ``test``: on the original grids, or on squares at ``size``."""
    if metrics_at == "native":
        return lambda segmenter: native_test_metrics(segmenter, test)
    test_t = square_tensors(test, size, what="real test split")
    return lambda segmenter: test_metrics(segmenter, test_t)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_or_resume(
    protocol: str,
    out_dir: Path,
    key: str,
    train: dict[str, Any],
    score: Callable[[Segmenter], dict[str, Any]],
    device: torch.device,
    reuse: Path | None = None,
) -> tuple[Segmenter, dict[str, Any]]:
    folder = out_dir / protocol
    saved = folder / RESULT_FILE
    if reuse is not None and not saved.is_file():
        _copy_matching(reuse, folder, key)
    if saved.is_file() and (folder / CHECKPOINT_DIR).is_dir():
        previous = read_json(saved)
        if previous.get("key") == key:
            log.info("evaluate: %s already done (%s), reusing it", protocol, saved)
            return Segmenter.load(folder / CHECKPOINT_DIR, device), previous["result"]
    segmenter, summary = run_protocol(protocol, device=device, **train)
    result = {
        "metrics": score(segmenter),
        "training": summary.summary(),
        "checkpoint": f"{protocol}/{CHECKPOINT_DIR}",
    }
    if distributed.is_main():  # every rank holds the same weights and metrics; one writes them
        segmenter.save(folder / CHECKPOINT_DIR)
        write_json(saved, {"key": key, "result": result})
    return segmenter, result


def reused_folder(reuse: Path, protocol: str) -> Path:
    """``evaluate.reuse_real`` names a run folder or its ``evaluation/`` folder; the protocol's folder in it."""
    reuse = Path(reuse)
    if not reuse.is_dir():
        raise ConfigError(f"evaluate.reuse_real: {reuse} is not a folder (give another run's folder or its evaluation/ folder)")
    base = reuse / "evaluation" if (reuse / "evaluation").is_dir() else reuse
    return base / protocol


def _copy_matching(reuse: Path, folder: Path, key: str) -> bool:
    """Copy ``reuse``'s protocol folder into ``folder`` when its key is ``key``; False (and a log line) when not."""
    import shutil

    source = reused_folder(reuse, folder.name)
    saved = source / RESULT_FILE
    if not (saved.is_file() and (source / CHECKPOINT_DIR).is_dir()):
        log.info("evaluate: %s has no finished %s protocol to reuse; training it", source, folder.name)
        return False
    record = read_json(saved)
    if record.get("key") != key:
        log.info("evaluate: %s was trained on other cases or settings; training %s here", source, folder.name)
        return False
    if distributed.is_main():
        staging = folder.with_name(f".{folder.name}.reused.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source / CHECKPOINT_DIR, staging / CHECKPOINT_DIR)
        record["result"]["reused_from"] = str(source.resolve())
        write_json(staging / RESULT_FILE, record)
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished protocol folder of this run (no result.json)
        staging.rename(folder)
    distributed.barrier()
    log.info("evaluate: reusing the %s segmenter of %s (same cases, settings and seed)", folder.name, source)
    return True


def segmenter_size(seg: SegmenterConfig, spec: DataSpec, train: Dataset) -> int:
    """The side of the segmenter's square: ``segmenter.size``, ``native`` resolved on the training cases, or ``data.size``."""
    if seg.size == "native":
        return native_square_side(train)
    return int(seg.size or spec.size)


def _wh(hw: tuple[int, int]) -> str:
    """``(height, width)`` as image sizes are written: width x height."""
    return f"{hw[1]} x {hw[0]}"


def describe_resolution(
    metrics_at: str, test_sizes: list[tuple[int, int]], has_native: bool, size: int, square_fit: str
) -> str:
    """How the metrics were computed, in words for the report (``test_sizes``: ``(height, width)`` of each test case).

    e.g. ``native resolution, 565 x 584 px (all 20 test images)`` (width x height, as image sizes are
    written), ``native resolution per image, 512 x 399 to 512 x 512 px (58 test images)`` or
    ``at the segmenter's size, 128 x 128 px (test images fitted to the square by pad)``.
    """
    n = len(test_sizes)
    if metrics_at == "segmenter":
        return f"at the segmenter's size, {size} x {size} px (test images fitted to the square by {square_fit})"
    distinct = sorted(set(test_sizes), key=lambda hw: (hw[0] * hw[1], hw))
    if not has_native:
        return f"at the size the dataset is loaded at (data.size), {_wh(distinct[0])} px (all {n} test images; it has no original grid of its own)"
    cut = "; only the centre square of each, as the segmenter sees it" if square_fit == "crop" else ""
    if len(distinct) == 1:
        return f"native resolution, {_wh(distinct[0])} px (all {n} test images{cut})"
    return f"native resolution per image, {_wh(distinct[0])} to {_wh(distinct[-1])} px ({n} test images{cut})"


def resolution_summary(metrics_at: str, info: SegmenterInfo, test: Dataset) -> dict[str, Any]:
    """``result["resolution"]``: where the metrics were computed (``metrics_at``) and what the segmenter saw."""
    has_native = callable(getattr(test, "native", None))
    sizes, with_roi = [], 0
    for i in range(len(test)):
        sample, geometry = native_view(test, i)
        sizes.append((geometry.height, geometry.width))
        with_roi += sample.roi is not None
    square_fit = str(getattr(test, "square_fit", "pad"))
    by_area = sorted(set(sizes), key=lambda hw: (hw[0] * hw[1], hw))
    return {
        "metrics_at": metrics_at,
        "description": describe_resolution(metrics_at, sizes, has_native, info.size, square_fit),
        "dataset_native": has_native,
        "inside_roi": with_roi == len(sizes) and with_roi > 0,
        # [height, width] of the smallest and largest test image by area
        "test_sizes": {"smallest": list(by_area[0]), "largest": list(by_area[-1]), "distinct": len(by_area)} if sizes else None,
        "square_fit": square_fit,
        "segmenter_size": info.size,
        "patch": info.window,
        "window_overlap": info.window_overlap if info.window is not None else None,
    }


def evaluate_pipeline(
    config: EvaluateConfig,
    spec: DataSpec,
    train: Dataset,
    test: Dataset,
    synthetic: Dataset | None,
    out_dir: Path,
    device: torch.device,
    seed: int,
    show_progress: bool = True,
    inception_weights: str | Path | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Run the configured protocols and quality checks; return a JSON-able result.

    A segmenter trained on real data is needed as the reference for pair QC and image
    realism; when synthetic pairs are given it is trained even if ``real`` is not among
    the protocols (and then reported too). ``result["qc"]["scores"]`` maps each synthetic
    sample id to its QC Dice, for the manifest (:func:`msaug.segment.qc.annotate_manifest`).
    Synthetic pairs stay at the size they were generated at and are enlarged to the
    segmenter's square batch by batch; quality figures compare them with the real training
    cases at that same size. The segmenters' progress bars go to ``reporter`` (default: plain
    lines on stderr).
    """
    out_dir = Path(out_dir)
    device = torch.device(device)
    seg = config.segmenter
    if len(test) == 0:
        raise ConfigError("evaluate: the real test split is empty; set data.split.test above 0")
    has_synthetic = synthetic is not None and len(synthetic) > 0
    missing = [p for p in config.protocols if p in NEEDS_SYNTHETIC and not has_synthetic]
    if missing:
        raise ConfigError(f"evaluate: protocols {missing} need synthetic pairs, but the synthetic dataset is empty")

    size = segmenter_size(seg, spec, train)
    info = SegmenterInfo.for_spec(spec, seg.arch, seg.encoder, size, seg.patch, seg.window_overlap)
    train_t = square_tensors(train, size, what="real training split")
    fit_idx, val_idx = validation_split(len(train_t), seed=seed)
    fit_t, val_t = train_t.subset(fit_idx), (train_t.subset(val_idx) if val_idx else None)
    test_ids = sample_ids(test)  # from the dataset's id list where it has one: no file is read for it
    score = test_scorer(config.metrics_at, test, size)
    synth_all, quality_size = None, spec.size
    patch_size = synthetic.spec.size if synthetic is not None and synthetic.spec.patches else None
    patches = patch_size is not None
    problem = seg.patch_problem(patch_size) if patch_size is not None else None
    if problem:
        raise ConfigError(f"evaluate.segmenter: {problem}")
    if synthetic is not None and has_synthetic:  # kept at the size it was generated at
        quality_size = synthetic.spec.size
        synth_all = to_tensors(synthetic, quality_size, what="synthetic data")
    settings = TrainSettings(steps=seg.steps, batch_size=seg.batch_size, lr=seg.lr, seed=seed, show_progress=show_progress,
                             **({} if reporter is None else {"reporter": reporter}))
    weights = str(seg.weights) if seg.weights else None

    protocols = list(dict.fromkeys(config.protocols))
    if has_synthetic and "real" not in protocols:
        protocols.insert(0, "real")
    protocols.sort(key=lambda p: p != "real")  # the reference first: QC filters what the others see
    base_key = [seg.model_dump(mode="json"), seed, size, fit_t.ids, test_ids, config.metrics_at]
    result: dict[str, Any] = {
        "segmenter": {**seg.model_dump(mode="json"), "size": size},
        "seed": seed,
        "pairs": {"train": len(fit_t), "validation": len(val_t) if val_t else 0, "test": len(test_ids),
                  "synthetic": len(synth_all) if synth_all is not None else 0},
        "resolution": resolution_summary(config.metrics_at, info, test),
        "mix_ratio": config.mix_ratio,
        "protocols": {},
    }
    synth_used = synth_all
    reference: Segmenter | None = None
    for protocol in protocols:
        key_parts = [*base_key, protocol]
        if protocol in NEEDS_SYNTHETIC:
            assert synth_used is not None
            key_parts += [synth_used.ids, config.mix_ratio if protocol == "mix" else None]
        train_args = {"info": info, "real": fit_t, "val": val_t, "synthetic": synth_used, "settings": settings,
                      "mix_ratio": config.mix_ratio, "weights": weights}
        reuse = config.reuse_real if protocol == "real" else None
        segmenter, result["protocols"][protocol] = _train_or_resume(protocol, out_dir, _key(*key_parts), train_args, score, device, reuse)
        if protocol == "real":
            reference = segmenter
            if synth_all is not None:
                scores = score_pairs(reference, synth_all)
                keep = select(scores, config.qc_min_dice)
                if not keep and any(p in NEEDS_SYNTHETIC for p in protocols):
                    raise ConfigError(
                        f"evaluate.qc_min_dice {config.qc_min_dice:g} removed all {len(scores)} generated pairs (their QC Dice "
                        f"is {min(scores):.3f} to {max(scores):.3f}), so {', '.join(p for p in protocols if p in NEEDS_SYNTHETIC)} "
                        f"would have nothing to train on; lower it below {max(scores):.3f} or unset it, and rerun with --resume "
                        "(the stages, the pairs and the real segmenter are kept)"
                    )
                result["qc"] = {
                    "min_dice": config.qc_min_dice,
                    "mean_dice": sum(scores) / len(scores),
                    "kept": len(keep),
                    "total": len(scores),
                    "scores": dict(zip(synth_all.ids, (round(s, 6) for s in scores))),
                }
                synth_used = synth_all.subset(keep) if len(keep) < len(scores) else synth_all

    paired = paired_against(result["protocols"], "real", seed)
    if paired:
        result["paired"] = paired
    if synth_all is not None:
        # patches are compared with crops of the real training cases at their original resolution
        real_for_quality = native_crops(train, quality_size, len(synth_all), seed) if patches else train
        real_q = to_tensors(real_for_quality, quality_size, what="real training split")
        result["image_realism"] = image_realism(real_q.images, synth_all.images, reference, inception_weights or config.inception_weights)
        result["label_realism"] = label_realism(synth_all.labels, real_q.labels, spec)
        result["memorisation"] = memorisation_audit(real_q, synth_all, info.classes, info.encoding, downsample=spec.label_downsample)
    if distributed.is_main():
        write_json(out_dir / "evaluation.json", result)
    return result


def _pm(stat: dict[str, Any], digits: int = 3) -> str:
    if stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _seen(resolution: dict[str, Any]) -> str:
    """What the segmenter was trained on and predicted from, for the table heading."""
    if resolution.get("patch"):
        return f"{resolution['patch']} px patches, sliding-window prediction (overlap {resolution['window_overlap']:g})"
    return "whole images"


def format_markdown(result: dict[str, Any]) -> str:
    """The evaluation as Markdown tables for report.md."""
    seg = result["segmenter"]
    pairs = result["pairs"]
    resolution = result.get("resolution") or {}
    lines = [
        f"### Segmentation ({seg['arch']} / {seg['encoder']}, {seg['steps']} steps per protocol, {seg['size']} px, {_seen(resolution)})",
        "",
        f"Real pairs: {pairs['train']} train, {pairs['validation']} validation, {pairs['test']} test; "
        f"synthetic pairs: {pairs['synthetic']}. Mean ± std over test images; mean over foreground classes.",
        "",
    ]
    if resolution.get("description"):
        where = "inside each image's region of interest" if resolution.get("inside_roi") else "over each whole image"
        lines += [f"**Metrics computed at**: {resolution['description']}, {where}.", ""]
    lines += [
        "| protocol | Dice | IoU | sensitivity | specificity | AUC | HD95 (px) | best step | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in result["protocols"].items():
        m, t = p["metrics"]["mean"], p["training"]
        lines.append(
            f"| {name} | {_pm(m['dice'])} | {_pm(m['iou'])} | {_pm(m['sensitivity'])} | {_pm(m['specificity'])} "
            f"| {_pm(m['auc'])} | {_pm(m['hd95'], 1)} | {t['best_step']} | {t['seconds']:.0f} |"
        )
    first = next(iter(result["protocols"].values()), None)
    if first is not None:
        classes = list(first["metrics"]["classes"])
        lines += ["", "Dice per class:", "", "| protocol | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        for name, p in result["protocols"].items():
            lines.append(f"| {name} | " + " | ".join(_pm(p["metrics"]["classes"][c]["dice"]) for c in classes) + " |")
    if result.get("paired"):
        lines += ["", format_paired(result["paired"]).rstrip("\n")]
    qc = result.get("qc")
    if qc:
        rule = f"pairs with QC Dice < {qc['min_dice']} dropped" if qc["min_dice"] is not None else "no filter"
        lines += ["", f"**Pair QC**: mean QC Dice {qc['mean_dice']:.3f}; {qc['kept']}/{qc['total']} pairs kept ({rule})."]
    realism = result.get("image_realism")
    if realism and "encoder_fd" in realism:
        lines += ["", f"**Image realism** ({realism['feature_space']}): Fréchet distance {realism['encoder_fd']:.4g}, "
                  f"KID {realism['encoder_kid']:.4g} ± {realism['encoder_kid_std']:.2g}."]
    if realism and "fid" in realism:
        lines.append(f"FID {realism['fid']:.4g}, KID {realism['kid']:.4g} ± {realism['kid_std']:.2g} "
                     f"(FID reference Inception, weights {realism['inception_weights']}; images at 8 bits).")
    if realism and "inception_fd" in realism:
        lines.append(f"Fréchet distance {realism['inception_fd']:.4g}, KID {realism['inception_kid']:.4g} in torchvision's ImageNet "
                     f"Inception ({realism['inception_weights']}): not the FID reference network, not comparable with published FID.")
    labels = result.get("label_realism")
    if labels:
        nn_iou = labels["nearest_neighbour_iou"]
        lines += ["", f"**Label realism**: nearest-neighbour IoU precision {nn_iou['precision']:.3f}, coverage {nn_iou['coverage']:.3f}."]
        diversity = labels.get("diversity")
        if diversity and diversity["synthetic"] is not None:
            real = f"{diversity['real']:.3f}" if diversity["real"] is not None else "n/a"
            lines.append(f"Label diversity (mean IoU between distinct maps; lower is more varied): "
                         f"generated {diversity['synthetic']:.3f}, real {real}.")
    audit = result.get("memorisation")
    if audit:
        th = audit["thresholds"]
        lines += ["", f"**Memorisation audit**: {audit['near_copies']} of {audit['pairs']} generated pairs are near-copies of a "
                  f"training case ({audit['image_near_copies']} by image, detail correlation ≥ {th['image_similarity']}; "
                  f"{audit['label_near_copies']} by label map, IoU ≥ {th['label_iou']})."]
    return "\n".join(lines) + "\n"
