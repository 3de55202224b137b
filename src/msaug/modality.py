"""Typed descriptions of the tensors that flow between stages.

A *modality* says what a tensor is (noise, a label map, an image), its size and layout,
and how to derive it from a real :class:`~msaug.sample.Sample` (:meth:`Modality.view`).
That is how each stage gets its training pairs from the real dataset without glue code,
and how the composer checks that a chain of stages connects.

Tensor conventions (one sample; batches add a leading dimension):

* ``Noise(dim)``: ``float32 [dim]``, standard normal.
* ``Label(classes, size, encoding)``: ``float32 [K, size, size]`` with values in {0, 1}.
  ``index`` encoding: one channel per class *including background as class 0*, exactly
  one channel is 1 at each pixel (one-hot). ``multilabel`` encoding: one independent
  binary channel per structure (no background channel); channels may overlap.
  ``downsample`` (``area`` or ``max``) is how a real label map is shrunk to ``size``: by
  area, or by max pooling for thin structures such as vessels (:mod:`msaug.resize`).
* ``Image(channels, size)``: ``float32 [C, size, size]`` with values in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from msaug import label_encoding
from msaug.label_encoding import Encoding
from msaug.resize import Downsample, check_downsample, resize_image, resize_label

if TYPE_CHECKING:
    from msaug.sample import Sample


class Modality:
    """Base class of all modalities."""

    kind: str = "modality"

    def compatible(self, other: Modality) -> bool:
        """True when a tensor of ``other`` can be fed where ``self`` is expected."""
        return self == other

    def view(self, sample: Sample) -> torch.Tensor:
        """Derive this modality from a real sample (training input or target)."""
        raise TypeError(f"{self} cannot be derived from a real sample")

    def describe(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Noise(Modality):
    """A latent vector drawn from N(0, 1); stages that start a chain take it as input."""

    dim: int = 128
    kind = "noise"

    def compatible(self, other: Modality) -> bool:
        return isinstance(other, Noise)

    def __str__(self) -> str:
        return f"Noise({self.dim})"


@dataclass(frozen=True)
class Label(Modality):
    """A label map: ``classes`` names each channel (see the module docstring)."""

    classes: tuple[str, ...]
    size: int
    encoding: Encoding = "index"
    downsample: Downsample = "area"
    kind = "label"

    def __post_init__(self) -> None:
        if self.encoding not in ("index", "multilabel"):
            raise ValueError(f"Label encoding must be 'index' or 'multilabel', not {self.encoding!r}")
        if len(self.classes) < 1:
            raise ValueError("Label needs at least one class")
        if self.size < 1:
            raise ValueError(f"Label size must be positive, not {self.size}")
        check_downsample(self.downsample, "Label downsample")
        object.__setattr__(self, "classes", tuple(self.classes))

    @property
    def channels(self) -> int:
        return len(self.classes)

    def at(self, size: int) -> Label:
        """The same label map at another resolution."""
        return replace(self, size=size)

    def view(self, sample: Sample) -> torch.Tensor:
        label = torch.as_tensor(sample.label, dtype=torch.float32)
        if label.shape[0] != self.channels:
            raise ValueError(
                f"sample {sample.id!r} has {label.shape[0]} label channels, {self} expects {self.channels}"
            )
        return self.resize(label, self.size)

    def resize(self, label: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
        """``[K, H, W]`` or ``[B, K, H, W]`` maps of this modality at ``size``, shrunk by its ``downsample`` policy."""
        return resize_label(label, size, self.encoding, self.downsample)

    @property
    def foreground_channels(self) -> tuple[int, ...]:
        """The channels that hold structures: all but background (``index``), or all (``multilabel``)."""
        return label_encoding.foreground_channels(self.channels, self.encoding)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-channel probabilities (float32) of logits ``[..., K, H, W]``: softmax (``index``) or sigmoids."""
        return label_encoding.probabilities(logits, self.encoding)

    def harden(self, scores: torch.Tensor) -> torch.Tensor:
        """A valid 0/1 map from soft scores ``[..., K, H, W]`` in [0, 1] (argmax one-hot, or each channel at 0.5)."""
        return label_encoding.harden(scores, self.encoding)

    def harden_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """A valid 0/1 map from logits ``[..., K, H, W]`` (argmax one-hot, or each logit above 0)."""
        return label_encoding.harden_logits(logits, self.encoding)

    @property
    def file_format(self) -> str:
        """How label PNGs store this map: ``"class index"`` or ``"bit mask, bit k = channel k"``."""
        return label_encoding.file_format(self.encoding)

    def to_file(self, label: torch.Tensor) -> np.ndarray:
        """Hard ``[K, H, W]`` channels to the integer array a label PNG stores (:func:`msaug.label_encoding.to_file`)."""
        return label_encoding.to_file(label, self.encoding)

    def from_file(self, array: np.ndarray, where: str = "") -> torch.Tensor:
        """A label PNG's integer array to ``[K, H, W]`` channels; a DataError naming ``where`` for invalid values."""
        return label_encoding.from_file(array, self.channels, self.encoding, where)

    def __str__(self) -> str:
        policy = "" if self.downsample == "area" else f", {self.downsample}-pooled"
        return f"Label({len(self.classes)} classes, {self.size} px, {self.encoding}{policy})"


@dataclass(frozen=True)
class Image(Modality):
    """An image with ``channels`` channels (1: grey, 3: RGB), values in [0, 1]."""

    channels: int
    size: int
    kind = "image"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.size < 1:
            raise ValueError(f"Image needs positive channels and size, got {self.channels}, {self.size}")

    def at(self, size: int) -> Image:
        return Image(self.channels, size)

    def view(self, sample: Sample) -> torch.Tensor:
        image = torch.as_tensor(sample.image, dtype=torch.float32)
        if image.shape[0] != self.channels:
            raise ValueError(
                f"sample {sample.id!r} has {image.shape[0]} image channels, {self} expects {self.channels}"
            )
        return resize_image(image, self.size)

    def __str__(self) -> str:
        return f"Image({self.channels} ch, {self.size} px)"
