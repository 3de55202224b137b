"""Turning msaug datasets into training tensors, mixing real and synthetic data, cropping, augmenting.

:class:`SegmentationTensors` caches a :class:`msaug.Dataset` as stacked tensors (small
medical datasets fit in memory; caching avoids re-reading PNGs every step): real cases from
their original grid fitted to the segmenter's square (:func:`square_tensors`), generated pairs
at the size they were generated at (:func:`to_tensors`; the training loop resizes each batch
up, :func:`at_size`). :func:`random_crops` cuts the training patches. :class:`MixedDataset` is
the ``mix`` protocol's data as a plain ``torch.utils.data.Dataset`` anyone can drop into their
own training loop.

Label maps are shrunk to the segmenter's square by area whatever the data's
``label_downsample`` policy: that policy says how *stages* view coarse maps (``max``: "a vessel
passes under here"), while a segmenter's target must be the exact map, since it is scored
against the original grid; a max-pooled target would teach it vessels thicker than they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from msaug.errors import DataError
from msaug.resize import resize_image, resize_label, square_label
from msaug.sample import Dataset, DataSpec, Sample, native_view


@dataclass
class SegmentationTensors:
    """A dataset as tensors: images ``[N,C,S,S]``, labels ``[N,K,S,S]``, roi ``[N,1,S,S]`` (bool).

    ``patches``: the samples are crops at the original resolution (:attr:`msaug.DataSpec.patches`),
    used at their own pixel scale: never enlarged to a segmenter's square.
    """

    images: torch.Tensor
    labels: torch.Tensor
    roi: torch.Tensor
    ids: list[str]
    patches: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: list[int] | torch.Tensor) -> SegmentationTensors:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return SegmentationTensors(self.images[idx], self.labels[idx], self.roi[idx], [self.ids[int(i)] for i in idx], self.patches)

    @classmethod
    def concat(cls, parts: list[SegmentationTensors]) -> SegmentationTensors:
        return cls(
            torch.cat([p.images for p in parts]),
            torch.cat([p.labels for p in parts]),
            torch.cat([p.roi for p in parts]),
            [i for p in parts for i in p.ids],
            all(p.patches for p in parts),
        )


def _checked(sample: Sample, spec: DataSpec, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample's image and label as float tensors, checked against the dataset's channels."""
    if sample.image is None:
        raise DataError(f"{what}: sample {sample.id!r} has no image; segmenters need image/label pairs")
    image = torch.as_tensor(np.asarray(sample.image), dtype=torch.float32)
    label = torch.as_tensor(np.asarray(sample.label), dtype=torch.float32)
    if image.shape[0] != spec.channels or label.shape[0] != len(spec.classes):
        raise DataError(
            f"{what}: sample {sample.id!r} has {image.shape[0]} image / {label.shape[0]} label channels, "
            f"the dataset declares {spec.channels} / {len(spec.classes)}"
        )
    return image, label


def to_tensors(dataset: Dataset, size: int, encoding: str | None = None, what: str = "dataset") -> SegmentationTensors:
    """Load every sample of ``dataset`` at ``size`` (label-safe resize; ROI by nearest)."""
    spec = dataset.spec
    encoding = encoding or spec.encoding
    images, labels, rois, ids = [], [], [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        image, label = _checked(sample, spec, what)
        images.append(resize_image(image, size))
        labels.append(resize_label(label, size, encoding))
        if sample.roi is not None:
            roi = torch.as_tensor(np.asarray(sample.roi), dtype=torch.float32)[None, None]
            roi = F.interpolate(roi, size=(size, size), mode="nearest")[0] > 0.5
        else:
            roi = torch.ones(1, size, size, dtype=torch.bool)
        rois.append(roi)
        ids.append(str(sample.id))
    if not images:
        raise DataError(f"{what} is empty")
    return SegmentationTensors(torch.stack(images), torch.stack(labels), torch.stack(rois), ids, spec.patches)


def native_square_side(dataset: Dataset) -> int:
    """The square side of the largest case of ``dataset`` on its original grid (DRIVE: 584; no resampling at it)."""
    if len(dataset) == 0:
        raise DataError("segmenter size 'native': the real training split is empty")
    return max(native_view(dataset, i)[1].side for i in range(len(dataset)))


def square_tensors(dataset: Dataset, size: int, encoding: str | None = None, what: str = "dataset") -> SegmentationTensors:
    """Every case of ``dataset`` on its original grid, fitted to its square and resized to ``size``.

    The square is the one the dataset's own samples use (:func:`msaug.sample.native_view`:
    padded, centre cropped or squashed), so a prediction on it maps back onto the original
    grid exactly. The ROI is the dataset's (the fundus FOV) within the pixels the square holds;
    padding is outside it. Datasets without native samples are used at their own size.
    """
    spec = dataset.spec
    encoding = encoding or spec.encoding
    images, labels, rois, ids = [], [], [], []
    for i in range(len(dataset)):
        sample, geometry = native_view(dataset, i)
        image, label = _checked(sample, spec, what)
        roi = torch.ones(geometry.height, geometry.width) if sample.roi is None else torch.as_tensor(np.asarray(sample.roi), dtype=torch.float32)
        images.append(resize_image(geometry.to_square(image), size))
        labels.append(resize_label(square_label(geometry, label, encoding), size, encoding))
        rois.append(resize_label(geometry.to_square(roi[None]), size, "multilabel") > 0.5)
        ids.append(str(sample.id))
    if not images:
        raise DataError(f"{what} is empty")
    return SegmentationTensors(torch.stack(images), torch.stack(labels), torch.stack(rois), ids)


def at_size(batch: SegmentationTensors, size: int, encoding: str) -> SegmentationTensors:
    """``batch`` resized to ``size`` (label-safe labels, nearest ROI); unchanged when it is already there.

    Generated pairs are kept at the size they were generated at and brought up to the
    segmenter's square one batch at a time: the honest path (their detail is what the
    generator made) and a fraction of the memory of storing them enlarged.
    Native-resolution patches (``batch.patches``) are returned as they are: they already have
    the pixel scale of the segmenter's square.
    """
    if batch.patches or (batch.images.shape[-1] == size and batch.images.shape[-2] == size):
        return batch
    roi = F.interpolate(batch.roi.float(), size=(size, size), mode="nearest") > 0.5
    return SegmentationTensors(resize_image(batch.images, size), resize_label(batch.labels, size, encoding), roi, batch.ids)


def random_crops(
    batch: SegmentationTensors, patch: int, generator: torch.Generator, foreground: list[int], foreground_share: float = 0.5
) -> SegmentationTensors:
    """One random ``patch`` x ``patch`` crop per sample, the same for its image, label and ROI.

    Each crop is centred (as far as the image allows) on a random pixel of the sample's
    foreground (``foreground`` label channels inside the ROI) with probability
    ``foreground_share``, else on a random ROI pixel, so crops of FOV-less corners and empty
    background do not dominate and thin or small structures are seen often. A sample whose
    mask is empty is cropped anywhere. Images no larger than ``patch`` are returned whole.
    """
    b, _, h, w = batch.images.shape
    if patch >= h and patch >= w:
        return batch
    ph, pw = min(patch, h), min(patch, w)
    roi = batch.roi[:, 0].bool()
    wanted_foreground = torch.rand(b, generator=generator) < foreground_share
    images, labels, rois = [], [], []
    for i in range(b):
        mask = roi[i]
        if wanted_foreground[i] and foreground:
            on = batch.labels[i, foreground].amax(dim=0) > 0.5
            mask = on & mask if (on & mask).any() else mask
        where = mask.reshape(-1).nonzero().squeeze(1)
        if len(where) == 0:
            where = torch.arange(h * w)
        cy, cx = divmod(int(where[int(torch.randint(len(where), (1,), generator=generator))]), w)
        top, left = min(max(cy - ph // 2, 0), h - ph), min(max(cx - pw // 2, 0), w - pw)
        window = (slice(None), slice(top, top + ph), slice(left, left + pw))
        images.append(batch.images[i][window])
        labels.append(batch.labels[i][window])
        rois.append(batch.roi[i][window])
    return SegmentationTensors(torch.stack(images), torch.stack(labels), torch.stack(rois), batch.ids, batch.patches)


class MixedDataset(torch.utils.data.Dataset):
    """Real and synthetic pairs interleaved so that a share ``ratio`` of items is synthetic.

    Item ``i`` is synthetic exactly when ``floor((i + 1) * ratio) > floor(i * ratio)``, so
    any window of consecutive items holds the ratio up to one item, and a shuffled
    ``DataLoader`` sees it on average. One pass visits every real pair at least once;
    synthetic pairs are cycled. Items are ``(image, label, roi)`` tensors at ``size`` (default: the
    real dataset's size). Accepts msaug datasets or :class:`SegmentationTensors`.
    """

    def __init__(self, real: Dataset | SegmentationTensors, synthetic: Dataset | SegmentationTensors, ratio: float, size: int | None = None):
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"ratio is the synthetic share and must be in [0, 1), got {ratio}")
        self.real = real if isinstance(real, SegmentationTensors) else to_tensors(real, size or real.spec.size, what="real data")
        size = size or int(self.real.images.shape[-1])
        self.synthetic = (
            synthetic if isinstance(synthetic, SegmentationTensors) else to_tensors(synthetic, size, what="synthetic data")
        )
        if ratio > 0 and len(self.synthetic) == 0:
            raise DataError("mix: the synthetic dataset is empty")
        self.ratio = float(ratio)
        self._length = math.ceil(len(self.real) / (1.0 - self.ratio))

    def __len__(self) -> int:
        return self._length

    def is_synthetic(self, index: int) -> bool:
        return math.floor((index + 1) * self.ratio) > math.floor(index * self.ratio)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        synthetic_before = math.floor(index * self.ratio)
        if self.is_synthetic(index):
            source, j = self.synthetic, synthetic_before % len(self.synthetic)
        else:
            source, j = self.real, (index - synthetic_before) % len(self.real)
        return source.images[j], source.labels[j], source.roi[j]


@dataclass(frozen=True)
class Augmentation:
    """Joint image/label augmentation: a small random affine plus brightness/contrast/gamma.

    Geometry is applied to image (bilinear), label and ROI (nearest) with the same
    matrix, so labels stay hard and aligned. No flips by default: chest anatomy is not
    left/right symmetric (the heart is on the left).
    """

    rotate_degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.15
    gamma: float = 0.15
    flip: bool = False
    probability: float = 0.8

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, roi: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = images.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(b, generator=generator)

        apply = torch.rand(b, generator=generator) < self.probability
        angle = torch.deg2rad(uniform(-self.rotate_degrees, self.rotate_degrees)) * apply
        scale = 1.0 + uniform(-self.scale, self.scale) * apply
        shift = torch.stack([uniform(-self.translate, self.translate), uniform(-self.translate, self.translate)], 1) * 2
        shift = shift * apply[:, None]
        flip = torch.where((torch.rand(b, generator=generator) < 0.5) & apply & self.flip, -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
        ).to(images.device)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="border", align_corners=False)
        roi = F.grid_sample(roi.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False) > 0.5

        view = (b, 1, 1, 1)
        gain = (1.0 + uniform(-self.contrast, self.contrast) * apply).view(view).to(images.device)
        bias = (uniform(-self.brightness, self.brightness) * apply).view(view).to(images.device)
        gamma = torch.exp(uniform(-self.gamma, self.gamma) * apply).view(view).to(images.device)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + bias).clamp(0.0, 1.0) ** gamma
        return images, labels, roi
