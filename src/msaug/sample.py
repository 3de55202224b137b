"""Real samples and the description of a dataset's label space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from msaug.modality import Encoding, Image, Label
from msaug.resize import Downsample, SquareGeometry, check_downsample


@dataclass(frozen=True)
class DataSpec:
    """What every sample of a dataset looks like once loaded at ``size``.

    ``domain`` groups datasets whose label maps share meaning (``"xray"``, ``"fundus"``,
    ``"generic"``), so domain plugins can supply label metrics that apply to all of them.
    ``label_downsample`` is how stages shrink real label maps to their own size: ``"area"``,
    or ``"max"`` for thin structures (vessels) that must stay connected at low resolution.
    """

    classes: tuple[str, ...]
    encoding: Encoding
    channels: int
    size: int
    domain: str = "generic"
    has_roi: bool = False
    label_downsample: Downsample = "area"

    def __post_init__(self) -> None:
        check_downsample(self.label_downsample, "DataSpec label_downsample")

    @property
    def label(self) -> Label:
        return Label(self.classes, self.size, self.encoding, self.label_downsample)

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
