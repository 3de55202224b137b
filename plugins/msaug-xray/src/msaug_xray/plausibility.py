"""Anatomical plausibility of chest label maps, and the post-processing that enforces it.

A generated chest label map is *plausible* when every structure is exactly one connected
region in its expected place: each lung and clavicle on its own side of the image (the
patient's right on the image's left, see :mod:`msaug_xray.anatomy`), the clavicles above
the lung centres, the heart central-to-left and in the lower half. The rate of plausible
maps is the figure the issue asks the report to show; per-structure shares say *what*
goes wrong when it drops.

:func:`anatomical_postprocess` applies the same knowledge to a raw generator output: keep
lateral structures on their side, keep only the largest region of each structure and
fill its holes. It cannot invent a missing structure, so it raises the rate only where a
map is nearly right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from msaug import DataSpec
from msaug_xray.anatomy import IMAGE_SIDE

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: diagonal neighbours join a region
MIDLINE_MARGIN = 0.03  # share of the width a lateral structure may cross the midline by


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labelled, count = ndimage.label(mask, structure=_EIGHT)
    return labelled, int(count)


def _centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """(row, column) of the mask's centre as fractions of the image height/width."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return float(rows.mean() + 0.5) / mask.shape[0], float(cols.mean() + 0.5) / mask.shape[1]


def _in_place(name: str, centre: tuple[float, float] | None, centres: dict[str, tuple[float, float] | None]) -> bool:
    """Whether a structure's centre lies where the anatomy puts it (row, column fractions)."""
    if centre is None:
        return False
    row, col = centre
    side = IMAGE_SIDE.get(name)
    if side is not None and (col - 0.5) * side <= 0:
        return False
    if name.endswith("lung"):
        return 0.15 <= row <= 0.85
    if name == "heart":
        return 0.3 <= col <= 0.85 and 0.35 <= row <= 0.92
    if name.endswith("clavicle"):
        lung = centres.get(name.replace("clavicle", "lung"))
        return row <= 0.5 and (lung is None or row < lung[0])
    return True


def map_plausibility(label: np.ndarray, classes: Sequence[str]) -> dict[str, tuple[bool, bool, int]]:
    """Per structure of one ``[K, H, W]`` map: (one component, in place, component count)."""
    masks = {name: np.asarray(label[k]) > 0.5 for k, name in enumerate(classes)}
    centres = {name: _centroid(mask) for name, mask in masks.items()}
    out: dict[str, tuple[bool, bool, int]] = {}
    for name, mask in masks.items():
        _, count = _components(mask)
        out[name] = (count == 1, _in_place(name, centres[name], centres), count)
    return out


def plausibility_metrics(labels: torch.Tensor, spec: DataSpec) -> dict[str, float]:
    """The ``xray`` label metric: plausibility rate plus per-structure figures.

    ``plausibility_rate``: share of maps where every structure is one component in place.
    Per structure: ``<name>_one_component`` (share), ``<name>_in_place`` (share),
    ``<name>_components`` (mean count) and ``<name>_area`` (mean share of the image).
    """
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 4 or arr.shape[1] != len(spec.classes):
        raise ValueError(f"expected label maps [N, {len(spec.classes)}, H, W], got shape {tuple(arr.shape)}")
    n = arr.shape[0]
    if n == 0:
        return {"plausibility_rate": float("nan")}
    plausible = 0
    one = dict.fromkeys(spec.classes, 0)
    placed = dict.fromkeys(spec.classes, 0)
    counts = dict.fromkeys(spec.classes, 0)
    for label in arr:
        result = map_plausibility(label, spec.classes)
        plausible += all(ok and where for ok, where, _ in result.values())
        for name, (ok, where, count) in result.items():
            one[name] += ok
            placed[name] += where
            counts[name] += count
    areas = (arr > 0.5).mean(axis=(0, 2, 3))
    metrics = {"plausibility_rate": plausible / n}
    for k, name in enumerate(spec.classes):
        metrics[f"{name}_one_component"] = one[name] / n
        metrics[f"{name}_in_place"] = placed[name] / n
        metrics[f"{name}_components"] = counts[name] / n
        metrics[f"{name}_area"] = float(areas[k])
    return metrics


def _midline(masks: dict[str, np.ndarray], width: int) -> float:
    """The patient's midline column: halfway between the lungs' inner borders, else the image centre."""
    right, left = masks.get("right_lung"), masks.get("left_lung")
    if right is not None and left is not None and right.any() and left.any():
        inner_right = np.nonzero(right.any(axis=0))[0].max() + 1.0
        inner_left = float(np.nonzero(left.any(axis=0))[0].min())
        if inner_right <= inner_left + 0.1 * width:
            return (inner_right + inner_left) / 2
    return width / 2


def largest_region(mask: np.ndarray, fill_holes: bool = True) -> np.ndarray:
    """The largest 8-connected region of a bool mask, holes filled (an empty mask stays empty)."""
    box = _box(mask)
    if box is None:
        return mask
    sub = mask[box]  # every region lies inside the box: label only that
    labelled, count = _components(sub)
    if count > 1:
        sub = labelled == (int(np.argmax(np.bincount(labelled.ravel())[1:])) + 1)
    out = np.zeros_like(mask)
    out[box] = _filled_in_box(sub) if fill_holes else sub
    return out


def filled(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: the result of ``scipy.ndimage.binary_fill_holes``, computed faster.

    A hole is background not 4-connected to the border. One labelling of the background inside
    the mask's bounding box finds them, where scipy dilates from the border until nothing
    changes: the X-ray chain post-processes every generated map, five structures each, so this
    is on the generation path.
    """
    box = _box(mask)
    if box is None:
        return mask
    out = mask.copy()
    out[box] = _filled_in_box(mask[box])
    return out


def _box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The mask's bounding box grown by one pixel (within the image); ``None`` for an empty mask.

    Background outside the box is all joined to the border around it, so holes, and regions,
    are the same found inside the box as in the whole image.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)), slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w))


def _filled_in_box(sub: np.ndarray) -> np.ndarray:
    background, count = ndimage.label(~sub)  # 4-connectivity, as binary_fill_holes
    if count == 0:
        return sub
    keep = np.ones(count + 1, dtype=bool)  # True: part of the filled mask
    keep[np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])] = False
    keep[0] = True  # label 0 is the mask itself
    return keep[background]


def postprocess_map(label: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Anatomical post-processing of one ``[K, H, W]`` binary map (see the module docstring)."""
    masks = {name: np.asarray(label[k]) > 0.5 for k, name in enumerate(classes)}
    width = label.shape[-1]
    mid = _midline(masks, width)
    margin = MIDLINE_MARGIN * width  # sternal ends of the clavicles may reach just past the midline
    columns = np.arange(width) + 0.5
    out = np.zeros(label.shape, dtype=np.float32)
    for k, name in enumerate(classes):
        mask = masks[name]
        side = IMAGE_SIDE.get(name)
        if side is not None:
            mask = mask & ((columns - mid) * side > -margin)[None, :]
        out[k] = largest_region(mask)
    return out


def anatomical_postprocess(label: torch.Tensor, classes: Sequence[str]) -> torch.Tensor:
    """Post-process ``[K, H, W]`` or ``[B, K, H, W]`` hard label maps; returns float 0/1 on the input's device."""
    batched = label.dim() == 4
    arr = (label if batched else label.unsqueeze(0)).detach().cpu().numpy()
    out = np.stack([postprocess_map(m, classes) for m in arr])
    result = torch.from_numpy(out).to(label.device)
    return result if batched else result[0]
