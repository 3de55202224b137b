"""What every fundus dataset looks like, and the options check shared by its loaders."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from msaug import ConfigError, DataConfig, DataSpec, Sample, resize_image, resize_label

CLASSES = ("background", "vessel")
DOMAIN = "fundus"


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


def make_sample(case_id: str, image: np.ndarray, vessels: np.ndarray, fov: np.ndarray, size: int, meta: dict[str, Any]) -> Sample:
    """A square :class:`msaug.Sample` at ``size`` from a photograph of any shape.

    Non-square photographs (DRIVE is 565 x 584, HRF 3504 x 2336) are padded with black to a
    square around their centre before resizing, so the FOV stays round and nothing is cut.
    """
    image, vessels, fov = _pad_square(image), _pad_square(vessels[None])[0], _pad_square(fov[None])[0]
    vessels = vessels & fov
    label = np.stack([~vessels, vessels]).astype(np.float32)
    image_t = resize_image(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), size)
    label_t = resize_label(torch.from_numpy(label), size, "index")
    roi = resize_label(torch.from_numpy(np.stack([~fov, fov]).astype(np.float32)), size, "index")[1] > 0.5
    image_t = image_t * roi.float()  # black outside the FOV, as the photographs are
    return Sample(id=case_id, image=image_t.numpy(), label=label_t.numpy(), roi=roi.numpy(), meta=meta)


def _pad_square(array: np.ndarray) -> np.ndarray:
    """Pad ``[C, H, W]`` with zeros (False) to ``[C, S, S]``, ``S = max(H, W)``, centred."""
    _, h, w = array.shape
    side = max(h, w)
    if h == w:
        return array
    top, left = (side - h) // 2, (side - w) // 2
    out = np.zeros((array.shape[0], side, side), dtype=array.dtype)
    out[:, top : top + h, left : left + w] = array
    return out
