"""The ``evaluate:`` block of a pipeline: train segmenters under each protocol and report.

:func:`evaluate_pipeline` trains one segmenter per protocol with identical budgets, tests
each on the real test split, and adds the quality figures of the synthetic data (pair
QC, image and label realism, memorisation audit). Every protocol's result and checkpoint
is written atomically under ``out_dir/<protocol>/`` with a key of everything it depends
on, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from msaug.errors import ConfigError
from msaug.io import read_json, write_json
from msaug.pipeline.schema import EvaluateConfig
from msaug.sample import Dataset, DataSpec
from msaug.segment.audit import memorisation_audit
from msaug.segment.data import SegmentationTensors, to_tensors
from msaug.segment.label_realism import label_realism
from msaug.segment.metrics import batch_metrics, summarize
from msaug.segment.protocols import NEEDS_SYNTHETIC, run_protocol, validation_split
from msaug.segment.qc import score_pairs, select
from msaug.segment.realism import image_realism
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.train import TrainSettings
from msaug.train import distributed

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"
CHECKPOINT_DIR = "checkpoint"


def test_metrics(segmenter: Segmenter, test: SegmentationTensors, batch_size: int = 16) -> dict[str, Any]:
    """Per-class and mean metrics of ``segmenter`` on test tensors (inside their ROI)."""
    probs, pred = segmenter.predict(test.images, batch_size)
    per_image = batch_metrics(probs, pred, test.labels, test.roi)
    return summarize(per_image, segmenter.info.classes, segmenter.info.encoding)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_or_resume(
    protocol: str,
    out_dir: Path,
    key: str,
    train: dict[str, Any],
    test: SegmentationTensors,
    device: torch.device,
) -> tuple[Segmenter, dict[str, Any]]:
    folder = out_dir / protocol
    saved = folder / RESULT_FILE
    if saved.is_file() and (folder / CHECKPOINT_DIR).is_dir():
        previous = read_json(saved)
        if previous.get("key") == key:
            log.info("evaluate: %s already done (%s), reusing it", protocol, saved)
            return Segmenter.load(folder / CHECKPOINT_DIR, device), previous["result"]
    segmenter, summary = run_protocol(protocol, device=device, **train)
    result = {
        "metrics": test_metrics(segmenter, test),
        "training": summary.summary(),
        "checkpoint": f"{protocol}/{CHECKPOINT_DIR}",
    }
    if distributed.is_main():  # every rank holds the same weights and metrics; one writes them
        segmenter.save(folder / CHECKPOINT_DIR)
        write_json(saved, {"key": key, "result": result})
    return segmenter, result


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
) -> dict[str, Any]:
    """Run the configured protocols and quality checks; return a JSON-able result.

    A segmenter trained on real data is needed as the reference for pair QC and image
    realism; when synthetic pairs are given it is trained even if ``real`` is not among
    the protocols (and then reported too). ``result["qc"]["scores"]`` maps each synthetic
    sample id to its QC Dice, for the manifest (:func:`msaug.segment.qc.annotate_manifest`).
    """
    out_dir = Path(out_dir)
    device = torch.device(device)
    seg = config.segmenter
    size = seg.size or spec.size
    if len(test) == 0:
        raise ConfigError("evaluate: the real test split is empty; set data.split.test above 0")
    has_synthetic = synthetic is not None and len(synthetic) > 0
    missing = [p for p in config.protocols if p in NEEDS_SYNTHETIC and not has_synthetic]
    if missing:
        raise ConfigError(f"evaluate: protocols {missing} need synthetic pairs, but the synthetic dataset is empty")

    train_t = to_tensors(train, size, what="real training split")
    fit_idx, val_idx = validation_split(len(train_t), seed=seed)
    fit_t, val_t = train_t.subset(fit_idx), (train_t.subset(val_idx) if val_idx else None)
    test_t = to_tensors(test, spec.size, what="real test split")
    synth_all = to_tensors(synthetic, size, what="synthetic data") if has_synthetic else None
    info = SegmenterInfo.for_spec(spec, seg.arch, seg.encoder, size)
    settings = TrainSettings(steps=seg.steps, batch_size=seg.batch_size, lr=seg.lr, seed=seed, show_progress=show_progress)
    weights = str(seg.weights) if seg.weights else None

    protocols = list(dict.fromkeys(config.protocols))
    if has_synthetic and "real" not in protocols:
        protocols.insert(0, "real")
    protocols.sort(key=lambda p: p != "real")  # the reference first: QC filters what the others see
    base_key = [seg.model_dump(mode="json"), seed, size, fit_t.ids, test_t.ids]
    result: dict[str, Any] = {
        "segmenter": {**seg.model_dump(mode="json"), "size": size},
        "seed": seed,
        "pairs": {"train": len(fit_t), "validation": len(val_t) if val_t else 0, "test": len(test_t),
                  "synthetic": len(synth_all) if synth_all is not None else 0},
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
        segmenter, result["protocols"][protocol] = _train_or_resume(protocol, out_dir, _key(*key_parts), train_args, test_t, device)
        if protocol == "real":
            reference = segmenter
            if synth_all is not None:
                scores = score_pairs(reference, synth_all)
                keep = select(scores, config.qc_min_dice)
                result["qc"] = {
                    "min_dice": config.qc_min_dice,
                    "mean_dice": sum(scores) / len(scores),
                    "kept": len(keep),
                    "total": len(scores),
                    "scores": dict(zip(synth_all.ids, (round(s, 6) for s in scores))),
                }
                synth_used = synth_all.subset(keep) if len(keep) < len(scores) else synth_all

    if synth_all is not None:
        result["image_realism"] = image_realism(train_t.images, synth_all.images, reference, inception_weights)
        result["label_realism"] = label_realism(synth_all.labels, train_t.labels, info.spec)
        result["memorisation"] = memorisation_audit(train_t, synth_all, info.classes, info.encoding, downsample=info.spec.label_downsample)
    if distributed.is_main():
        write_json(out_dir / "evaluation.json", result)
    return result


def _pm(stat: dict[str, Any], digits: int = 3) -> str:
    if stat.get("mean") is None:
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def format_markdown(result: dict[str, Any]) -> str:
    """The evaluation as Markdown tables for report.md."""
    seg = result["segmenter"]
    pairs = result["pairs"]
    lines = [
        f"### Segmentation ({seg['arch']} / {seg['encoder']}, {seg['steps']} steps per protocol, {seg['size']} px)",
        "",
        f"Real pairs: {pairs['train']} train, {pairs['validation']} validation, {pairs['test']} test; "
        f"synthetic pairs: {pairs['synthetic']}. Mean ± std over test images; mean over foreground classes.",
        "",
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
    qc = result.get("qc")
    if qc:
        rule = f"pairs with QC Dice < {qc['min_dice']} dropped" if qc["min_dice"] is not None else "no filter"
        lines += ["", f"**Pair QC**: mean QC Dice {qc['mean_dice']:.3f}; {qc['kept']}/{qc['total']} pairs kept ({rule})."]
    realism = result.get("image_realism")
    if realism and "encoder_fd" in realism:
        lines += ["", f"**Image realism** ({realism['feature_space']}): Fréchet distance {realism['encoder_fd']:.4g}, "
                  f"KID {realism['encoder_kid']:.4g} ± {realism['encoder_kid_std']:.2g}."]
    if realism and "fid" in realism:
        lines.append(f"FID {realism['fid']:.4g}, KID {realism['kid']:.4g} (Inception weights: {realism['inception_weights']}).")
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
