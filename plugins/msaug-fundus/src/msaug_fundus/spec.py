"""What every fundus dataset looks like, and the options check shared by its loaders."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from msaug import ConfigError, DataConfig, DataSpec, Sample, resize_image, resize_label
from msaug.resize import SquareGeometry, square_label

CLASSES = ("background", "vessel")
DOMAIN = "fundus"
#: how real photographs are fitted to the square stages and segmenters work on
SQUARE_FIT = "pad"


def fundus_spec(size: int) -> DataSpec:
    """Vessel maps in index encoding (background, vessel), RGB images, the FOV as ROI.

    Stages shrink vessel maps by max pooling (``label_downsample="max"``): shrunk by area, a
    32 px view of a 128 px vessel tree keeps 0.3 % vessel pixels in a few specks; max pooled,
    it keeps one connected tree (measured on the phantom).
    """
    return DataSpec(
        classes=CLASSES, encoding="index", channels=3, size=size, domain=DOMAIN, has_roi=True, label_downsample="max"
    )


def read_options(config: DataConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """``config.options`` merged over ``defaults``; an unknown key is a ConfigError naming the valid ones."""
    unknown = sorted(set(config.options) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
        raise ConfigError(f"data.options: {config.dataset} has no option {', '.join(map(repr, unknown))}; valid: {valid}")
    return {**defaults, **config.options}


def choose(config: DataConfig, key: str, value: Any, valid: dict[Any, Any]) -> Any:
    """Map an option value through ``valid`` (accepted spellings to meaning), or raise ConfigError."""
    for accepted, meaning in valid.items():
        if value == accepted or str(value).lower() == str(accepted).lower():
            return meaning
    shown = ", ".join(repr(k) for k in valid)
    raise ConfigError(f"data.options.{key}: {config.dataset} does not know {value!r}; valid: {shown}")


def native_sample(case_id: str, image: np.ndarray, vessels: np.ndarray, fov: np.ndarray, meta: dict[str, Any]) -> Sample:
    """A photograph on its original grid: image black outside the FOV, vessels inside it, ROI = FOV.

    Published vessel metrics (DRIVE: 565 x 584) are computed on this grid, inside the FOV.
    """
    fov = np.asarray(fov, dtype=bool)
    vessels = np.asarray(vessels, dtype=bool) & fov
    label = np.stack([~vessels, vessels]).astype(np.float32)
    image = (np.asarray(image, dtype=np.float32) * fov).astype(np.float32)
    return Sample(id=case_id, image=image, label=label, roi=fov, meta=meta)


def square_sample(native: Sample, size: int, mode: str = SQUARE_FIT) -> Sample:
    """The square :class:`msaug.Sample` at ``size`` of a native one (see :func:`native_sample`).

    Non-square photographs (DRIVE is 565 x 584, HRF 3504 x 2336) are padded with black to a
    square around their centre (:class:`msaug.resize.SquareGeometry`, the geometry segmenters
    use to score on the original grid), then resized: nothing is cut and the FOV stays round.
    The image is blackened outside the resized FOV, as the photographs are.
    """
    assert native.image is not None and native.roi is not None
    h, w = native.label.shape[-2:]
    geometry = SquareGeometry(int(h), int(w), mode)  # type: ignore[arg-type]
    image = resize_image(geometry.to_square(torch.from_numpy(native.image)), size)
    label = resize_label(square_label(geometry, torch.from_numpy(native.label), "index"), size, "index")
    fov = torch.from_numpy(native.roi)
    roi = resize_label(square_label(geometry, torch.stack([~fov, fov]).float(), "index"), size, "index")[1] > 0.5
    image = image * roi.float()
    return Sample(id=native.id, image=image.numpy(), label=label.numpy(), roi=roi.numpy(), meta=dict(native.meta))

