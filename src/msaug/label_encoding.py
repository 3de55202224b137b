"""What a label encoding means: every rule that depends on ``index`` vs ``multilabel``, once.

``index``: one channel per class, background as class 0, exactly one channel on at each
pixel. ``multilabel``: one independent channel per structure, no background channel,
channels may overlap (clavicles over lungs). From that follow:

* how network outputs become label maps: :func:`probabilities` (softmax over the channels,
  or one sigmoid per channel), :func:`harden` (soft scores to a valid 0/1 map: argmax one-hot,
  or each channel at 0.5) and :func:`harden_logits` (the same from logits);
* which channels hold structures: :func:`foreground_channels` (all but background);
* how a label map is stored in a label PNG: a *class index* per pixel, or a *bit mask* per
  pixel (bit k set when channel k is on): :func:`to_file` / :func:`from_file`, the value that
  stands for each class (:func:`file_value`) and the words that describe the format
  (:func:`file_format`).

:class:`msaug.modality.Label` and :class:`msaug.DataSpec` offer these as methods; code that
only holds an encoding (a segmenter's description) calls the functions.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from msaug.errors import DataError

Encoding = Literal["index", "multilabel"]
ENCODINGS: tuple[str, ...] = get_args(Encoding)


def _unknown(encoding: str) -> ValueError:
    return ValueError(f"unknown label encoding {encoding!r}; valid: 'index', 'multilabel'")


def harden(scores: torch.Tensor, encoding: str) -> torch.Tensor:
    """Turn soft class scores ``[..., K, H, W]`` into a valid binary label map (float 0/1)."""
    if encoding == "index":
        index = scores.argmax(dim=-3)
        return F.one_hot(index, scores.shape[-3]).movedim(-1, -3).to(torch.float32)
    if encoding == "multilabel":
        return (scores >= 0.5).to(torch.float32)
    raise _unknown(encoding)


def harden_logits(logits: torch.Tensor, encoding: str) -> torch.Tensor:
    """Hard 0/1 label map from logits ``[..., K, H, W]``: one-hot argmax (``index``) or ``logit > 0`` (``multilabel``)."""
    if encoding == "multilabel":
        return (logits > 0).to(torch.float32)
    return harden(logits, encoding)


def probabilities(logits: torch.Tensor, encoding: str) -> torch.Tensor:
    """Per-channel probabilities (float32) from logits ``[..., K, H, W]``: softmax over the channels (``index``) or sigmoids."""
    if encoding == "index":
        return torch.softmax(logits.float(), dim=-3)
    if encoding == "multilabel":
        return torch.sigmoid(logits.float())
    raise _unknown(encoding)


def foreground_channels(channels: int, encoding: str) -> tuple[int, ...]:
    """The channels that hold structures: all but the background channel 0 (``index``), or all (``multilabel``)."""
    if encoding == "index":
        return tuple(range(1, channels))
    if encoding == "multilabel":
        return tuple(range(channels))
    raise _unknown(encoding)


def index_to_channels(index: torch.Tensor, classes: int) -> torch.Tensor:
    """``[H, W]`` integer class map to ``[K, H, W]`` one-hot float channels."""
    return F.one_hot(index.long(), classes).movedim(-1, -3).to(torch.float32)


def channels_to_index(label: torch.Tensor) -> torch.Tensor:
    """``[..., K, H, W]`` one-hot channels to an integer class map ``[..., H, W]``."""
    return label.argmax(dim=-3)


def channels_to_bits(label: torch.Tensor) -> torch.Tensor:
    """``[..., K, H, W]`` multilabel channels to an integer bit mask (bit k = channel k)."""
    weights = (2 ** torch.arange(label.shape[-3], dtype=torch.int64)).view(-1, 1, 1)
    return (label.to(torch.int64) * weights).sum(dim=-3)


def bits_to_channels(bits: torch.Tensor, classes: int) -> torch.Tensor:
    """Inverse of :func:`channels_to_bits`."""
    shifts = torch.arange(classes, dtype=torch.int64).view(-1, 1, 1)
    return ((bits.to(torch.int64).unsqueeze(-3) >> shifts) & 1).to(torch.float32)


def file_format(encoding: str, per_pixel: bool = False) -> str:
    """How label files store the map: ``"class index"`` or ``"bit mask, bit k = channel k"`` (``per_pixel``: "... per pixel ...")."""
    where = " per pixel" if per_pixel else ""
    if encoding == "index":
        return f"class index{where}"
    if encoding == "multilabel":
        return f"bit mask{where}, bit k = channel k"
    raise _unknown(encoding)


def file_value(channel: int, encoding: str) -> int:
    """The stored value that stands for ``channel`` alone: its class index, or its bit (``1 << channel``)."""
    if encoding == "index":
        return channel
    if encoding == "multilabel":
        return 1 << channel
    raise _unknown(encoding)


def file_limit(classes: int, encoding: str) -> int:
    """The largest valid stored value for ``classes`` channels."""
    return classes - 1 if encoding == "index" else file_value(classes, encoding) - 1


def to_file(label: torch.Tensor, encoding: str) -> np.ndarray:
    """Hard ``[K, H, W]`` label channels to the integer array stored in a label PNG (uint8, uint16 past 8 bits)."""
    if encoding == "index":
        return channels_to_index(label).to(torch.uint8).numpy()
    if encoding != "multilabel":
        raise _unknown(encoding)
    bits = channels_to_bits(label).numpy()
    return bits.astype(np.uint8 if label.shape[0] <= 8 else np.uint16)


def from_file(array: np.ndarray, classes: int, encoding: str, where: str = "") -> torch.Tensor:
    """Inverse of :func:`to_file`; a :class:`~msaug.errors.DataError` naming ``where`` for values outside the declared classes."""
    top = int(array.max()) if array.size else 0
    limit = file_limit(classes, encoding)
    if top > limit or int(array.min(initial=0)) < 0:
        valid = f"0..{limit} (class indices)" if encoding == "index" else f"bit masks 0..{limit} ({classes} channels)"
        raise DataError(f"{where}: label value {top} is outside the declared classes; valid values: {valid}")
    tensor = torch.from_numpy(array.astype(np.int64))
    return index_to_channels(tensor, classes) if encoding == "index" else bits_to_channels(tensor, classes)
