"""Built-in datasets: ``folder`` (any images/ + labels/ layout) and ``synthetic`` (msaug output)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from msaug.data import DataConfig
from msaug.errors import ConfigError, DataError
from msaug.hookspecs import hookimpl
from msaug.io import read_image, read_label_raw
from msaug.label_values import LabelValues, distinct, stored_values, warn_lossy_labels
from msaug.plugins import DatasetRegistry
from msaug.resize import SquareFit, SquareGeometry, resize_image, resize_label, square_label
from msaug.sample import DataSpec, Sample
from msaug.synthetic import SyntheticDataset

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm")


def _files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in files:
                raise DataError(f"{folder}: two files share the stem {path.stem!r} ({files[path.stem].name}, {path.name})")
            files[path.stem] = path
    return files


def resize_sample(sample: Sample, spec: DataSpec) -> Sample:
    """Bring a loaded sample to ``spec.size`` (label-safe for the label, shrunk by the data's policy; antialiased for the image)."""
    size = spec.size
    label = spec.label.resize(torch.from_numpy(np.ascontiguousarray(sample.label)), size).numpy()
    image = None if sample.image is None else resize_image(torch.from_numpy(np.ascontiguousarray(sample.image)), size).numpy()
    roi = None
    if sample.roi is not None:
        roi_t = torch.from_numpy(sample.roi.astype(np.float32))[None]
        roi = resize_label(roi_t, size, "multilabel")[0].numpy() > 0.5
    return Sample(sample.id, image, label, roi, dict(sample.meta))


@dataclass(frozen=True)
class LabelScan:
    """What the data check needs from one label file: its size and distinct stored values."""

    shape: tuple[int, int]
    values: tuple[int, ...]
    kind: str  # "grey" or "colour" (see msaug.label_values.stored_values)


#: scans by (path, size in bytes, mtime, colours), so a check followed by a run reads each file once
_LABEL_SCANS: dict[tuple[str, int, int, bool], LabelScan] = {}
_IMAGE_SIZES: dict[tuple[str, int, int], tuple[int, int]] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    return str(path), stat.st_size, stat.st_mtime_ns


def scan_label(path: Path, colours: bool) -> LabelScan:
    """Size and distinct values of a label file (cached until the file changes)."""
    key = (*_file_key(path), colours)
    if key not in _LABEL_SCANS:
        values, kind = stored_values(read_label_raw(path, colours), colours)
        _LABEL_SCANS[key] = LabelScan((int(values.shape[0]), int(values.shape[1])), tuple(distinct(values)), kind)
    return _LABEL_SCANS[key]


def scan_image(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, decoded once so a corrupt or truncated file is found (cached)."""
    key = _file_key(path)
    if key not in _IMAGE_SIZES:
        try:
            with PILImage.open(path) as img:
                img.load()
                _IMAGE_SIZES[key] = (img.height, img.width)
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image ({exc})") from None
    return _IMAGE_SIZES[key]


class FolderDataset:
    """``root/images/*`` and ``root/labels/*`` matched by file stem (or ``labels/`` alone).

    What label files hold is a :class:`~msaug.label_values.LabelValues`: class indices, 0/255
    for two classes, a ``data.label_values`` map of grey values or colours, or bit masks
    (``multilabel``). Images of any shape are fitted to a square by ``data.square_fit``:
    ``pad`` (default) centres them in a square of zeros (black; background in the label map)
    and marks the original area as the sample's ``roi``, so metrics ignore the padding while
    stages learn the padded square as the segmenter will see it (``spec.has_roi`` stays
    False). :meth:`native` gives the sample at its own size; :meth:`check` reads every file
    before any training.
    """

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the folder dataset needs a root folder with labels/ (and images/)")
        encoding = config.encoding or "index"
        self.values = LabelValues.from_config(config.classes, encoding, config.label_values)
        root = Path(config.root)
        if not root.is_dir():
            raise DataError(f"data.root: folder {root} does not exist")
        label_dir, image_dir = root / "labels", root / "images"
        if not label_dir.is_dir():
            raise DataError(f"{root}: no labels/ folder; the folder dataset expects {root}/labels (and {root}/images)")
        self.root = root
        self.labels = _files_by_stem(label_dir)
        self.images = _files_by_stem(image_dir) if image_dir.is_dir() else None
        if not self.labels:
            raise DataError(f"{label_dir}: no label files ({', '.join(IMAGE_SUFFIXES)})")
        warn_lossy_labels(self.labels.values())
        if self.images is not None:
            missing = sorted(set(self.labels) - set(self.images))
            extra = sorted(set(self.images) - set(self.labels))
            if missing or extra:
                raise DataError(
                    f"{root}: images/ and labels/ do not pair up by stem: "
                    + (f"labels without image: {', '.join(missing[:5])}; " if missing else "")
                    + (f"images without label: {', '.join(extra[:5])}" if extra else "")
                )
        self.stems = sorted(self.labels)[: config.count] if config.count else sorted(self.labels)
        self.square_fit: SquareFit = config.square_fit or "pad"
        self.spec = DataSpec(self.values.classes, encoding, config.channels or 1, config.size, "generic")
        self._load = lru_cache(maxsize=None)(self._read)

    @property
    def ids(self) -> list[str]:
        """Sample ids (the file stems), known without reading a file: grouped splits use them."""
        return list(self.stems)

    @property
    def has_images(self) -> bool:
        """False for a labels-only folder: stages that learn images cannot fit on it."""
        return self.images is not None

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> Sample:
        return self._load(range(len(self.stems))[index])

    def check(self) -> None:
        """Read every file the dataset uses; raise :class:`DataError` on the first problem.

        Label files: readable, stored values valid (see :class:`LabelValues`); image files:
        readable and the size of their label. Scans are cached, so checking 300 label maps
        of 512 px takes about a second once and nothing after.
        """
        for stem in self.stems:
            label_path = self.labels[stem]
            scan = scan_label(label_path, self.values.colours)
            self.values.check(scan.values, scan.kind, str(label_path))
            if self.images is not None:
                self._same_size(self.images[stem], scan_image(self.images[stem]), label_path, scan.shape)

    @staticmethod
    def _same_size(image_path: Path, image_hw: tuple[int, ...], label_path: Path, label_hw: tuple[int, ...]) -> None:
        if tuple(image_hw) != tuple(label_hw):
            raise DataError(
                f"{image_path}: image is {image_hw[1]}x{image_hw[0]} but its label "
                f"{label_path.name} is {label_hw[1]}x{label_hw[0]}; they must match"
            )

    def native(self, index: int) -> Sample:
        """Sample ``index`` at the size of its files: image ``[C, H, W]``, label ``[K, H, W]``, no roi."""
        stem = self.stems[index]
        label_path = self.labels[stem]
        values, kind = stored_values(read_label_raw(label_path, self.values.colours), self.values.colours)
        label = self.values.to_label(values, kind, str(label_path))
        image = None
        meta = {"label_file": str(label_path), "native_size": (int(values.shape[0]), int(values.shape[1])), "square_fit": self.square_fit}
        if self.images is not None:
            image = read_image(self.images[stem], channels=self.spec.channels)
            self._same_size(self.images[stem], image.shape[1:], label_path, values.shape)
            meta["image_file"] = str(self.images[stem])
        return Sample(stem, image, label, None, meta)

    def _read(self, index: int) -> Sample:
        return square_sample(self.native(index), self.spec, self.square_fit)


def square_sample(native: Sample, spec: DataSpec, square_fit: SquareFit) -> Sample:
    """A sample at its own size fitted to the square by ``square_fit`` and resized to ``spec.size``.

    ``pad`` marks the original area as the ``roi`` (the padding is background in the label map).
    Every dataset read from files of their own size (folder, nnunet, datalist) loads this way.
    """
    h, w = native.label.shape[-2:]
    geometry = SquareGeometry(h, w, square_fit)
    label = square_label(geometry, torch.from_numpy(native.label), spec.encoding)  # padding is background
    roi = geometry.to_square(torch.ones(1, h, w, dtype=torch.bool))[0].numpy() if square_fit == "pad" else None
    image = None if native.image is None else geometry.to_square(torch.from_numpy(native.image)).numpy()
    return resize_sample(Sample(native.id, image, label.numpy(), roi, native.meta), spec)


class ResizedSynthetic:
    """A synthetic dataset folder, loaded at the pipeline's size."""

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the synthetic dataset needs the synthetic/ folder of a run")
        self.inner = SyntheticDataset(config.root)
        s = self.inner.spec
        # native-resolution patches stay patches only at their own size: resized, their pixel scale is another
        self.spec = replace(s.at(config.size), patches=s.patches and config.size == s.size)
        self.count = min(len(self.inner), config.count or len(self.inner))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        return resize_sample(self.inner[index], self.spec)


@hookimpl
def msaug_register_datasets(register: DatasetRegistry) -> None:
    register(
        "folder",
        FolderDataset,
        description="images/ + labels/ matched by file stem (or labels/ only); label_values maps stored values or "
        "colours to classes (0/255 two-class masks need none); square_fit pad|squash|crop; split group_by TABLE.csv:COLUMN",
    )
    register("synthetic", ResizedSynthetic, description="a synthetic/ folder written by msaug pipeline run")
