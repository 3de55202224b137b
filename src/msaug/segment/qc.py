"""Pair-consistency quality control of generated pairs.

A segmenter trained on *real* data segments each generated image; its Dice against the
pair's own label map says whether image and label agree (a generated lung field that
the label calls heart scores low). Scores are stored per pair in the synthetic
manifest as ``qc_dice``, and ``--qc-min-dice`` drops low-scoring pairs before they are
used for training or exported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from msaug.errors import DataError
from msaug.io import atomic_open
from msaug.sample import Dataset
from msaug.segment.data import SegmentationTensors, to_tensors
from msaug.segment.metrics import dice_per_image, foreground_classes
from msaug.segment.segmenter import Segmenter

QC_FIELD = "qc_dice"


def score_pairs(segmenter: Segmenter, pairs: Dataset | SegmentationTensors, batch_size: int = 16) -> list[float]:
    """Mean foreground Dice of ``segmenter``'s prediction against each pair's own label.

    ``pairs`` is a synthetic dataset (any :class:`msaug.Dataset`) or tensors already
    loaded; scores come back in dataset order.
    """
    tensors = pairs if isinstance(pairs, SegmentationTensors) else to_tensors(pairs, pairs.spec.size, what="synthetic data")
    fg = foreground_classes(segmenter.info.classes, segmenter.info.encoding)
    if tensors.labels.shape[1] != len(segmenter.info.classes):
        raise DataError(
            f"QC: the pairs have {tensors.labels.shape[1]} label channels, the segmenter predicts "
            f"{len(segmenter.info.classes)} ({', '.join(segmenter.info.classes)})"
        )
    _, pred = segmenter.predict(tensors.images, batch_size, rescale=not tensors.patches)  # patches: at their own scale
    return [float(d) for d in dice_per_image(pred, tensors.labels, fg, tensors.roi)]


def select(scores: list[float], min_dice: float | None) -> list[int]:
    """Positions of the pairs whose QC Dice reaches ``min_dice`` (all when it is ``None``)."""
    return [i for i, s in enumerate(scores) if min_dice is None or s >= min_dice]


def annotate_manifest(synthetic_dir: str | Path, scores: Mapping[int, float]) -> int:
    """Write ``qc_dice`` into the manifest lines of the given pair indices (atomically).

    Returns how many lines were updated; indices not in the manifest are an error, since
    they mean the scores belong to another dataset.
    """
    path = Path(synthetic_dir) / "manifest.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found; is {synthetic_dir} a synthetic dataset folder?")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    known = {int(e["index"]) for e in lines}
    unknown = sorted(set(int(i) for i in scores) - known)
    if unknown:
        raise DataError(f"{path}: no manifest entries for pair indices {unknown[:10]}")
    for entry in lines:
        if int(entry["index"]) in scores:
            entry[QC_FIELD] = round(float(scores[int(entry["index"])]), 6)
    with atomic_open(path, "w") as fh:
        for entry in lines:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return len(scores)


def manifest_scores(entries: list[dict[str, Any]], where: str) -> list[float]:
    """The ``qc_dice`` of each manifest entry; an error naming the fix if any lacks one."""
    missing = [e["index"] for e in entries if QC_FIELD not in e]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} pair(s) have no {QC_FIELD} (e.g. index {missing[0]}); "
            "score them first with `msaug segment qc SYNTH_DIR --checkpoint CKPT`"
        )
    return [float(e[QC_FIELD]) for e in entries]


def dataset_indices(dataset: Dataset) -> list[int]:
    """Manifest index of each pair of a synthetic dataset (its position when it has none)."""
    out = []
    for i in range(len(dataset)):
        meta = getattr(dataset, "entries", None)
        out.append(int(meta[i]["index"]) if meta is not None else i)
    return out


def scores_by_index(dataset: Dataset, scores: list[float]) -> dict[int, float]:
    return dict(zip(dataset_indices(dataset), scores))


__all__ = ["QC_FIELD", "annotate_manifest", "manifest_scores", "score_pairs", "scores_by_index", "select"]


