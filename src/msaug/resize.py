"""Resizing that is safe for label maps.

Label maps are never interpolated into in-between values: each class channel is
resampled as a soft occupancy map (antialiased bilinear, i.e. area-weighted when
shrinking, smooth when enlarging) and then *hardened* back to valid labels: the most
occupied class wins for ``index`` encoding, each channel is thresholded at 0.5 for
``multilabel``. Boundaries stay smooth when upscaling and no label value is invented.

Shrinking by area loses structures thinner than the shrink factor (a 2 px vessel vanishes
at a quarter of the size). Label maps of thin structures therefore declare the ``max``
downsampling policy: a structure claims a coarse pixel when *any* fine pixel under it
belongs to the structure (max pooling), so vessel trees stay connected at every scale and a
coarse map says where structures *may* be. Enlarging is the same under both policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

# the label-encoding rules live in msaug.label_encoding; re-exported here, where plugins reach them
from msaug.label_encoding import (  # noqa: F401
    bits_to_channels,
    channels_to_bits,
    channels_to_index,
    harden,
    index_to_channels,
)

SizeLike = int | tuple[int, int]
Downsample = Literal["area", "max"]
DOWNSAMPLE_POLICIES: tuple[str, ...] = get_args(Downsample)


def check_downsample(policy: str, what: str) -> str:
    """``policy`` if it is a downsampling policy, else a ValueError naming ``what`` and the valid ones."""
    if policy not in DOWNSAMPLE_POLICIES:
        raise ValueError(f"{what}: unknown label downsampling policy {policy!r}; valid: {', '.join(DOWNSAMPLE_POLICIES)}")
    return policy


def _hw(size: SizeLike) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _resample(x: torch.Tensor, size: SizeLike) -> torch.Tensor:
    hw = _hw(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    batched = x if x.dim() == 4 else x.unsqueeze(0)
    out = F.interpolate(batched.float(), size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out if x.dim() == 4 else out.squeeze(0)


def resize_label(label: torch.Tensor, size: SizeLike, encoding: str, downsample: str = "area") -> torch.Tensor:
    """Label-safe resize of ``[K, H, W]`` or ``[B, K, H, W]`` binary channels.

    ``downsample`` is the policy when shrinking: ``area`` (the most occupied class wins) or
    ``max`` (a structure present anywhere under a coarse pixel claims it; among several
    structures of an ``index`` map the most occupied one wins). See the module docstring.
    """
    check_downsample(downsample, "resize_label")
    hw = _hw(size)
    if tuple(label.shape[-2:]) == hw:
        return label.to(torch.float32)
    soft = _resample(label, size)
    if downsample == "area" or (hw[0] >= label.shape[-2] and hw[1] >= label.shape[-1]):
        return harden(soft, encoding)
    batched = label if label.dim() == 4 else label.unsqueeze(0)
    present = F.adaptive_max_pool2d(batched.float(), hw)
    present = present if label.dim() == 4 else present.squeeze(0)
    if encoding == "multilabel":
        return (present >= 0.5).to(torch.float32)
    # index: any present structure (score 1 + occupancy > 1) beats background (score <= 1)
    scores = soft.clone()
    scores[..., 1:, :, :] = torch.where(present[..., 1:, :, :] >= 0.5, 1.0 + soft[..., 1:, :, :], soft[..., 1:, :, :].clamp(max=0.0))
    return harden(scores, encoding)


def resize_image(image: torch.Tensor, size: SizeLike) -> torch.Tensor:
    """Antialiased bilinear resize of ``[C, H, W]`` or ``[B, C, H, W]`` images, clamped to [0, 1]."""
    return _resample(image, size).clamp_(0.0, 1.0)


SquareFit = Literal["pad", "squash", "crop"]
SQUARE_FITS: tuple[str, ...] = get_args(SquareFit)


def check_square_fit(mode: str, what: str) -> str:
    """``mode`` if it is a way to fit a rectangle to a square, else a ValueError naming the valid ones."""
    if mode not in SQUARE_FITS:
        raise ValueError(f"{what}: unknown square fit {mode!r}; valid: {', '.join(SQUARE_FITS)}")
    return mode


@dataclass(frozen=True)
class SquareGeometry:
    """Where an ``height x width`` original sits in the square it is fitted to.

    Stages and segmenters work on squares; real photographs and radiographs rarely are.
    ``pad`` centres the original in a ``max(h, w)`` square of zeros (nothing is cut and the
    anatomy keeps its aspect ratio: the default), ``crop`` keeps the central ``min(h, w)``
    square, ``squash`` resizes the whole original to a square (distorts the aspect ratio).
    :meth:`to_square` and :meth:`from_square` are exact inverses on the covered region, so a
    prediction made on the square can be scored against the original at its own resolution.
    """

    height: int
    width: int
    mode: SquareFit = "pad"

    def __post_init__(self) -> None:
        check_square_fit(self.mode, "SquareGeometry mode")

    @property
    def side(self) -> int:
        """Side of the square before any resize (``squash``: the longer side)."""
        return min(self.height, self.width) if self.mode == "crop" else max(self.height, self.width)

    @property
    def offset(self) -> tuple[int, int]:
        """``(top, left)`` of the original in the square (``pad``: positive) or of the square in the original (``crop``)."""
        if self.mode == "pad":
            return (self.side - self.height) // 2, (self.side - self.width) // 2
        if self.mode == "crop":
            return (self.height - self.side) // 2, (self.width - self.side) // 2
        return 0, 0

    def to_square(self, array: torch.Tensor) -> torch.Tensor:
        """``[C, H, W]`` (any dtype) placed in the square: zero padded, centre cropped, or unchanged for ``squash``.

        ``squash`` leaves the array as it is: the caller's resize to a square size does the squashing
        (with the label-safe kernel for label maps).
        """
        if tuple(array.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"array is {tuple(array.shape[-2:])}, geometry is {(self.height, self.width)}")
        top, left = self.offset
        if self.mode == "pad":
            out = array.new_zeros((*array.shape[:-2], self.side, self.side))
            out[..., top : top + self.height, left : left + self.width] = array
            return out
        if self.mode == "crop":
            return array[..., top : top + self.side, left : left + self.side]
        return array

    def covered(self) -> torch.Tensor:
        """``[H, W]`` bool: pixels of the original that the square holds (all but ``crop``'s margins)."""
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)
        top, left = self.offset
        if self.mode == "crop":
            mask[top : top + self.side, left : left + self.side] = True
        else:
            mask[:] = True
        return mask

    def from_square(self, square: torch.Tensor) -> torch.Tensor:
        """Soft maps ``[K, S, S]`` at any square size back onto the original grid ``[K, H, W]`` (bilinear).

        Pixels of the original that the square did not hold (``crop``'s margins) are 0; score
        them with :meth:`covered` as a region of interest.
        """
        if square.dim() != 3 or square.shape[-1] != square.shape[-2]:
            raise ValueError(f"from_square expects [K, S, S] maps, got {tuple(square.shape)}")
        top, left = self.offset
        if self.mode == "squash":
            return _resample(square.float(), (self.height, self.width))
        full = _resample(square.float(), self.side)
        if self.mode == "pad":
            return full[:, top : top + self.height, left : left + self.width]
        out = full.new_zeros((full.shape[0], self.height, self.width))
        out[:, top : top + self.side, left : left + self.side] = full
        return out


def square_label(geometry: SquareGeometry, label: torch.Tensor, encoding: str) -> torch.Tensor:
    """A ``[K, H, W]`` label map placed in its square, the padding labelled background.

    :meth:`SquareGeometry.to_square` pads with zeros, which leaves ``index`` maps with no class
    at all in the margin; here class 0 (background) claims it, so the square is a valid one-hot
    map. ``multilabel`` maps need nothing: all channels off already means background.
    """
    square = geometry.to_square(label.to(torch.float32))
    if encoding == "index" and geometry.mode == "pad" and (geometry.height, geometry.width) != (geometry.side, geometry.side):
        inside = geometry.to_square(torch.ones(1, geometry.height, geometry.width))
        square[..., :1, :, :] += 1.0 - inside
    return square
