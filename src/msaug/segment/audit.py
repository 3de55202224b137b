"""Memorisation audit: is any generated pair a near-copy of a training case?

Synthetic data shared outside a hospital must not leak training cases. For each
generated image and label map the nearest training neighbour is found (fine-detail
image correlation, mean foreground label IoU; see :mod:`msaug.segment.similarity`), and
pairs above the thresholds are flagged. The same nearest-neighbour figure among the
training cases themselves (each against the others) is reported as a baseline: how
similar two genuinely different real cases are in this dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from msaug.segment.data import SegmentationTensors
from msaug.segment.metrics import foreground_classes
from msaug.segment.similarity import image_correlation_matrix, label_iou_matrix


@dataclass(frozen=True)
class AuditThresholds:
    #: fine-detail correlation at or above which an image counts as a near-copy
    image: float = 0.9
    #: mean foreground IoU at or above which a label map counts as a near-copy
    label: float = 0.95


def _nearest(similarity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    best = similarity.max(dim=1)
    return best.values, best.indices


def _leave_one_out_baseline(similarity: torch.Tensor) -> float | None:
    if similarity.shape[0] < 2:
        return None
    s = similarity.clone()
    s.fill_diagonal_(-float("inf"))
    return float(s.max(dim=1).values.median())


def memorisation_audit(
    train: SegmentationTensors,
    synthetic: SegmentationTensors,
    classes: tuple[str, ...],
    encoding: str,
    thresholds: AuditThresholds | None = None,
    size: int = 64,
    downsample: str = "area",
) -> dict[str, Any]:
    """Flag generated pairs whose image or label map nearly copies a training case.

    ``downsample`` is the data's label policy (``DataSpec.label_downsample``), used when
    label maps are shrunk to ``size`` for comparison.
    """
    thresholds = thresholds or AuditThresholds()
    fg = foreground_classes(classes, encoding)
    image_sim, image_nn = _nearest(image_correlation_matrix(synthetic.images, train.images, size))
    label_sim, label_nn = _nearest(label_iou_matrix(synthetic.labels, train.labels, fg, encoding, size, downsample))
    flagged = []
    for i in range(len(synthetic)):
        image_copy = bool(image_sim[i] >= thresholds.image)
        label_copy = bool(label_sim[i] >= thresholds.label)
        if image_copy or label_copy:
            flagged.append(
                {
                    "id": synthetic.ids[i],
                    "image_neighbour": train.ids[int(image_nn[i])],
                    "image_similarity": round(float(image_sim[i]), 4),
                    "label_neighbour": train.ids[int(label_nn[i])],
                    "label_iou": round(float(label_sim[i]), 4),
                    "kind": "image+label" if image_copy and label_copy else ("image" if image_copy else "label"),
                }
            )
    return {
        "thresholds": {"image_similarity": thresholds.image, "label_iou": thresholds.label},
        "pairs": len(synthetic),
        "near_copies": len(flagged),
        "image_near_copies": sum(1 for f in flagged if "image" in f["kind"]),
        "label_near_copies": sum(1 for f in flagged if "label" in f["kind"]),
        "max_image_similarity": float(image_sim.max()) if len(synthetic) else None,
        "max_label_iou": float(label_sim.max()) if len(synthetic) else None,
        "baseline_real_image_similarity": _leave_one_out_baseline(image_correlation_matrix(train.images, train.images, size)),
        "baseline_real_label_iou": _leave_one_out_baseline(label_iou_matrix(train.labels, train.labels, fg, encoding, size, downsample)),
        "flagged": flagged,
    }
