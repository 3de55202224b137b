"""Per-image segmentation metrics, aggregated as mean ± std over test images.

For each image and class: Dice (= F1), IoU, pixel accuracy, sensitivity, specificity,
AUC from the predicted probabilities (torchmetrics computes the confusion counts and the
AUC) and the 95th-percentile Hausdorff distance in pixels (scipy distance transforms;
torchmetrics has no percentile variant). Everything is computed inside the image's
region of interest when it has one (the fundus field of view): pixels outside it are
neither counted nor used as surface points.

Empty masks follow the usual conventions, so a correct "nothing here" is rewarded:

* Dice and IoU are 1 when prediction and truth are both empty, 0 when only one is.
* Sensitivity is undefined (NaN) without positive pixels, specificity without negative
  ones, AUC unless both are present, HD95 when exactly one of the masks is empty (0 when
  both are). Undefined values are left out of means; ``n`` says how many images count.

The summary's ``mean`` row averages the *foreground* classes of each image first (all
channels for ``multilabel``; every class except background, class 0, for ``index``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torchmetrics.functional.classification import binary_auroc, binary_stat_scores

from msaug.label_encoding import foreground_channels

METRICS = ("dice", "iou", "accuracy", "sensitivity", "specificity", "auc", "hd95")


def foreground_classes(classes: tuple[str, ...] | list[str], encoding: str) -> list[int]:
    """Indices of the classes that count in the mean: the foreground channels (all but background for ``index``).

    A map of background alone (one ``index`` class) has no foreground; its one class is scored.
    """
    return list(foreground_channels(len(classes), encoding)) or list(range(len(classes)))


def _ratio(num: float, den: float, empty: float) -> float:
    return num / den if den > 0 else empty


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (or outside the image): MONAI's edge pixels.

    ``get_mask_edges`` erodes with scipy's default cross-shaped structure and pads with zeros;
    a 3x3 square structure would also count pixels with only a diagonal outside neighbour
    and move HD95 by up to several pixels on thin structures.
    """
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, target: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance (pixels) between two 2-D boolean masks.

    Equal to MONAI's ``compute_hausdorff_distance(percentile=95)`` (tested to 1e-4 relative on
    random mask pairs): edge pixels as :func:`_surface`, Euclidean distance from each edge pixel
    to the nearest edge pixel of the other mask, linear-interpolated 95th percentile of each
    direction, the larger of the two. Empty masks: 0 if both are empty (MONAI: NaN), NaN if
    exactly one is (as MONAI).
    """
    pred, target = pred.astype(bool), target.astype(bool)
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return math.nan
    sp, st = _surface(pred), _surface(target)
    to_target = ndimage.distance_transform_edt(~st)
    to_pred = ndimage.distance_transform_edt(~sp)
    return float(max(np.percentile(to_target[sp], 95), np.percentile(to_pred[st], 95)))


def image_metrics(probs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Metrics of one image: ``probs``/``pred``/``target`` are ``[K, H, W]``, ``roi`` ``[H, W]`` bool.

    Returns one ``[K]`` float array per metric name in :data:`METRICS`.
    """
    k = target.shape[0]
    inside = torch.ones(target.shape[-2:], dtype=torch.bool) if roi is None else roi.reshape(target.shape[-2:]).bool().cpu()
    p = pred.detach().cpu().reshape(k, -1)[:, inside.reshape(-1)].T.int()
    t = target.detach().cpu().reshape(k, -1)[:, inside.reshape(-1)].T.int()
    s = probs.detach().cpu().float().reshape(k, -1)[:, inside.reshape(-1)].T
    out = {name: np.full(k, math.nan) for name in METRICS}
    if p.shape[0] == 0:
        return out
    # one row per class; torchmetrics' samplewise mode fails on a single row, so pad with a copy
    rows_p, rows_t = (p.T, t.T) if k > 1 else (p.T.repeat(2, 1), t.T.repeat(2, 1))
    stats = binary_stat_scores(rows_p, rows_t, threshold=0.5, multidim_average="samplewise").double()[:k]  # [K, 5]
    pred_np = pred.detach().cpu().numpy().astype(bool) & inside.numpy()
    target_np = target.detach().cpu().numpy().astype(bool) & inside.numpy()
    for c in range(k):
        tp, fp, tn, fn = (float(v) for v in stats[c, :4])
        empty = 1.0 if tp + fp + fn == 0 else 0.0
        out["dice"][c] = _ratio(2 * tp, 2 * tp + fp + fn, empty)
        out["iou"][c] = _ratio(tp, tp + fp + fn, empty)
        out["accuracy"][c] = (tp + tn) / (tp + fp + tn + fn)
        out["sensitivity"][c] = _ratio(tp, tp + fn, math.nan)
        out["specificity"][c] = _ratio(tn, tn + fp, math.nan)
        if 0 < tp + fn < p.shape[0]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out["auc"][c] = float(binary_auroc(s[:, c], t[:, c]))
        out["hd95"][c] = hd95(pred_np[c], target_np[c])
    return out


def _stat(values: np.ndarray) -> dict[str, float | int | None]:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "n": int(finite.size)}


def summarize(per_image: list[dict[str, np.ndarray]], classes: tuple[str, ...] | list[str], encoding: str) -> dict[str, Any]:
    """Aggregate :func:`image_metrics` results: per class and foreground mean, mean ± std over images.

    ``per_image_dice`` keeps each image's foreground Dice in the order given, for paired
    comparisons of protocols scored on the same images (:mod:`msaug.segment.paired`).
    """
    fg = foreground_classes(classes, encoding)
    result: dict[str, Any] = {"images": len(per_image), "foreground": [classes[c] for c in fg], "classes": {}, "mean": {}}
    for c, name in enumerate(classes):
        result["classes"][name] = {m: _stat(np.array([img[m][c] for img in per_image])) for m in METRICS}
    for m in METRICS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN image rows stay NaN
            rows = np.array([np.nanmean(img[m][fg]) for img in per_image]) if per_image else np.array([])
        result["mean"][m] = _stat(rows)
        if m == "dice":  # each image's foreground Dice, in test order: protocols are compared image by image
            result["per_image_dice"] = [float(v) if np.isfinite(v) else None for v in rows]
    return result


def batch_metrics(probs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None = None) -> list[dict[str, np.ndarray]]:
    """:func:`image_metrics` for each image of a batch (``[B, K, H, W]``; ``roi`` ``[B, 1, H, W]``)."""
    return [image_metrics(probs[b], pred[b], target[b], None if roi is None else roi[b]) for b in range(target.shape[0])]


def dice_per_image(pred: torch.Tensor, target: torch.Tensor, foreground: list[int], roi: torch.Tensor | None = None) -> torch.Tensor:
    """Mean foreground Dice of each image of a batch (fast path for validation and QC).

    ``[B, K, H, W]`` hard maps; an image whose foreground classes are all empty in both
    prediction and truth scores 1.
    """
    if roi is not None:
        pred, target = pred * roi, target * roi
    p, t = pred[:, foreground].flatten(2), target[:, foreground].flatten(2)
    inter = (p * t).sum(-1)
    total = p.sum(-1) + t.sum(-1)
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1e-9), torch.ones_like(total))
    return dice.mean(dim=1)
