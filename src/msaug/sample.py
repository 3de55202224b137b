"""Real samples and the description of a dataset's label space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from msaug.errors import DataError
from msaug.modality import Encoding, Image, Label
from msaug.resize import Downsample, SquareGeometry, check_downsample


@dataclass(frozen=True)
class DataSpec:
    """What every sample of a dataset looks like once loaded at ``size``.

    ``domain`` groups datasets whose label maps share meaning (``"xray"``, ``"fundus"``,
    ``"generic"``), so domain plugins can supply label metrics that apply to all of them.
    ``label_downsample`` is how stages shrink real label maps to their own size: ``"area"``,
    or ``"max"`` for thin structures (vessels) that must stay connected at low resolution.
    ``patches``: the samples are ``size`` x ``size`` crops of cases at their original resolution
    (``data.crops``), not whole cases fitted to the square, so segmenters that work at the
    original resolution use them at their own pixel scale instead of enlarging them.
    """

    classes: tuple[str, ...]
    encoding: Encoding
    channels: int
    size: int
    domain: str = "generic"
    has_roi: bool = False
    label_downsample: Downsample = "area"
    patches: bool = False

    def __post_init__(self) -> None:
        check_downsample(self.label_downsample, "DataSpec label_downsample")

    @property
    def label(self) -> Label:
        return Label(self.classes, self.size, self.encoding, self.label_downsample)

    @property
    def foreground_channels(self) -> tuple[int, ...]:
        """The label channels that hold structures (:attr:`msaug.modality.Label.foreground_channels`)."""
        return self.label.foreground_channels

    def at(self, size: int) -> DataSpec:
        """The same data at another ``size``; every other field (``has_roi``, ``label_downsample``, ``patches``) kept."""
        return replace(self, size=size)

    def with_label(self, label: Label) -> DataSpec:
        """This data with ``label``'s classes, encoding, size and downsampling policy (a stage's label modality)."""
        return replace(self, classes=label.classes, encoding=label.encoding, size=label.size, label_downsample=label.downsample)

    @property
    def image(self) -> Image:
        return Image(self.channels, self.size)


@dataclass
class Sample:
    """One real image/label pair.

    ``image``: float32 ``[C, H, W]`` in [0, 1]. ``label``: float32 ``[K, H, W]`` binary
    channels (see :mod:`msaug.modality`). ``roi``: optional bool ``[H, W]`` region of
    interest (the fundus field of view), where metrics are computed.
    """

    id: str
    image: np.ndarray | None
    label: np.ndarray
    roi: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Dataset(Protocol):
    """What a dataset factory returns: a sized, indexable collection of samples.

    ``dataset[i]`` is sample *i* fitted to a square at ``spec.size``. A dataset read from files
    of their own size (photographs, radiographs) may also offer ``native(i)``: the same sample
    on its original grid (``image [C, H, W]``, ``label [K, H, W]``, ``roi [H, W]`` or None), with
    a ``square_fit`` attribute (``pad``, ``crop`` or ``squash``) saying how ``dataset[i]`` was
    fitted to the square. Segmenters train and are scored at the original resolution through it
    (:func:`native_view`), as published results are.

    Optional members that ``msaug pipeline check`` uses before any training:

    * ``check()``: read every file (label values, sizes, pairing) and raise ``DataError`` on
      the first problem, so bad data fails in seconds instead of after stages trained;
    * ``has_images``: False for labels-only data (stages that learn images cannot fit on it);
    * ``ids``: every sample id without reading files (grouped splits match them to a table);
    * ``official_split()``: ``{"train": [positions], "test": [positions]}``, the split the
      dataset's publishers use (``data.split: official``), e.g. DRIVE's training/test folders.
    """

    spec: DataSpec

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class ListDataset:
    """A dataset held in memory, used for splits and tests."""

    def __init__(self, spec: DataSpec, samples: Sequence[Sample]):
        self.spec = spec
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def native_view(dataset: Dataset, index: int) -> tuple[Sample, SquareGeometry]:
    """Sample ``index`` on its original grid and how it maps to the square.

    Datasets without ``native`` (phantoms, synthetic pairs) are native at ``spec.size``.
    """
    native = getattr(dataset, "native", None)
    sample = native(index) if callable(native) else dataset[index]
    h, w = np.asarray(sample.label).shape[-2:]
    return sample, SquareGeometry(int(h), int(w), getattr(dataset, "square_fit", "pad"))


class SubsetDataset:
    """Cases ``indices`` of ``dataset``, read on access; ``native`` and ``square_fit`` are passed through."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)
        self.spec = dataset.spec
        self.square_fit = getattr(dataset, "square_fit", "pad")
        if callable(getattr(dataset, "native", None)):
            self.native = lambda i: dataset.native(self.indices[i])  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[index]]

    @property
    def ids(self) -> list[str]:
        """The subset's sample ids (from the dataset's ``ids`` where it lists them)."""
        ids = getattr(self.dataset, "ids", None)
        if ids is not None and len(ids) == len(self.dataset):
            return [str(ids[i]) for i in self.indices]
        return [str(self[i].id) for i in range(len(self))]


#: share of a crop that must lie inside the case's ROI (:func:`native_crops`), and the draws to find one
CROP_ROI_SHARE = 0.95
CROP_TRIES = 20


def crop_size_problem(sample_id: str, height: int, width: int, size: int) -> str | None:
    """Why ``size`` px crops cannot be cut from a case of ``width`` x ``height`` px (``None``: they can)."""
    if min(height, width) >= size:
        return None
    return (f"case {sample_id!r} is {width}x{height} px, smaller than the {size} px crops (data.size); "
            f"use a data.size of at most {min(height, width)}, or leave data.crops unset")


def native_crops(dataset: Dataset, size: int, count: int, seed: int) -> ListDataset:
    """``count`` random ``size`` x ``size`` crops of the cases of ``dataset`` at their original resolution.

    What the stages learn from under ``data.crops``: patches at the pixel scale of the real
    photographs (thin vessels stay 1-3 px wide), where whole cases fitted to the square at
    ``data.size`` would be shrunk several times. Cases take turns (case ``i % n`` gives crop
    ``i``); each crop is centred on a uniformly drawn pixel of the case's ROI (the fundus field
    of view; anywhere without one), moved inside the case, and redrawn (up to
    :data:`CROP_TRIES` times, keeping the best) until :data:`CROP_ROI_SHARE` of it lies inside
    the ROI: generated pairs have no ROI, so the stages learn patches of retina, not of the
    black surround, whose border a label map cannot tell an image stage. The crops are drawn from
    ``seed`` alone, so a resumed or repeated run learns from the same ones. The result's spec
    is ``dataset.spec`` at ``size`` with ``patches=True``; each crop keeps its part of the ROI.
    """
    n = len(dataset)
    if n == 0:
        raise DataError("data.crops: there are no cases to crop (the split is empty)")
    rng = np.random.default_rng(seed)
    spec = replace(dataset.spec.at(size), patches=True)
    per_case = [len(range(c, count, n)) for c in range(n)]
    crops: list[Sample] = []
    for case in range(n):
        if per_case[case] == 0:
            continue
        sample, _ = native_view(dataset, case)
        label = np.asarray(sample.label)
        h, w = label.shape[-2:]
        problem = crop_size_problem(str(sample.id), h, w, size)
        if problem:
            raise DataError(f"data.crops: {problem}")
        roi = None if sample.roi is None else np.asarray(sample.roi, dtype=bool)
        where = np.flatnonzero(roi) if roi is not None and roi.any() else None
        for k in range(per_case[case]):
            best: tuple[float, int, int] = (-1.0, 0, 0)
            for _ in range(CROP_TRIES if roi is not None else 1):
                flat = int(where[rng.integers(len(where))]) if where is not None else int(rng.integers(h * w))
                cy, cx = divmod(flat, w)
                top, left = min(max(cy - size // 2, 0), h - size), min(max(cx - size // 2, 0), w - size)
                share = 1.0 if roi is None else float(roi[top : top + size, left : left + size].mean())
                if share > best[0]:
                    best = (share, top, left)
                if share >= CROP_ROI_SHARE:
                    break
            _, top, left = best
            window = (slice(None), slice(top, top + size), slice(left, left + size))
            image = None if sample.image is None else np.ascontiguousarray(np.asarray(sample.image)[window])
            crop_roi = None if roi is None else np.ascontiguousarray(roi[top : top + size, left : left + size])
            meta = {**sample.meta, "crop_of": str(sample.id), "crop_box": (top, left, size, size)}
            crops.append(Sample(f"{sample.id}@{top},{left}#{k}", image, np.ascontiguousarray(label[window]), crop_roi, meta))
    return ListDataset(spec, crops)
