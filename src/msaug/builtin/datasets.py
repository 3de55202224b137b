"""Built-in datasets: ``folder`` (any images/ + labels/ layout) and ``synthetic`` (msaug output)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from msaug.data import DataConfig
from msaug.errors import ConfigError, DataError
from msaug.hookspecs import hookimpl
from msaug.io import read_image, read_label_array
from msaug.plugins import DatasetRegistry
from msaug.resize import resize_image, resize_label
from msaug.sample import DataSpec, Sample
from msaug.synthetic import SyntheticDataset, array_to_label

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
    """Bring a loaded sample to ``spec.size`` (label-safe for the label, antialiased for the image)."""
    size = spec.size
    label = resize_label(torch.from_numpy(np.ascontiguousarray(sample.label)), size, spec.encoding).numpy()
    image = None if sample.image is None else resize_image(torch.from_numpy(np.ascontiguousarray(sample.image)), size).numpy()
    roi = None
    if sample.roi is not None:
        roi_t = torch.from_numpy(sample.roi.astype(np.float32))[None]
        roi = resize_label(roi_t, size, "multilabel")[0].numpy() > 0.5
    return Sample(sample.id, image, label, roi, dict(sample.meta))


class FolderDataset:
    """``root/images/*`` and ``root/labels/*`` matched by file stem (or ``labels/`` alone).

    Label files hold class indices (``index`` encoding) or bit masks (``multilabel``: bit k
    set where channel k is on). Class names, encoding and image channels come from the YAML.
    """

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the folder dataset needs a root folder with labels/ (and images/)")
        if not config.classes:
            raise ConfigError("data.classes: the folder dataset needs the class names, e.g. [background, lesion]")
        root = Path(config.root)
        if not root.is_dir():
            raise DataError(f"data.root: folder {root} does not exist")
        label_dir, image_dir = root / "labels", root / "images"
        if not label_dir.is_dir():
            raise DataError(f"{root}: no labels/ folder; the folder dataset expects {root}/labels (and {root}/images)")
        encoding = config.encoding or "index"
        self.labels = _files_by_stem(label_dir)
        self.images = _files_by_stem(image_dir) if image_dir.is_dir() else None
        if not self.labels:
            raise DataError(f"{label_dir}: no label files ({', '.join(IMAGE_SUFFIXES)})")
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
        self.spec = DataSpec(tuple(config.classes), encoding, config.channels or 1, config.size, "generic")
        self._load = lru_cache(maxsize=None)(self._read)

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> Sample:
        return self._load(index)

    def _read(self, index: int) -> Sample:
        stem = self.stems[index]
        label_path = self.labels[stem]
        raw = read_label_array(label_path)
        label = array_to_label(raw, len(self.spec.classes), self.spec.encoding, str(label_path)).numpy()
        image = None
        if self.images is not None:
            image = read_image(self.images[stem], channels=self.spec.channels)
            if image.shape[1:] != raw.shape:
                raise DataError(
                    f"{self.images[stem]}: image is {image.shape[2]}x{image.shape[1]} but its label "
                    f"{label_path.name} is {raw.shape[1]}x{raw.shape[0]}; they must match"
                )
        return resize_sample(Sample(stem, image, label, meta={"label_file": str(label_path)}), self.spec)


class ResizedSynthetic:
    """A synthetic dataset folder, loaded at the pipeline's size."""

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the synthetic dataset needs the synthetic/ folder of a run")
        self.inner = SyntheticDataset(config.root)
        s = self.inner.spec
        self.spec = DataSpec(s.classes, s.encoding, s.channels, config.size, s.domain, label_downsample=s.label_downsample)
        self.count = min(len(self.inner), config.count or len(self.inner))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Sample:
        return resize_sample(self.inner[index], self.spec)


@hookimpl
def msaug_register_datasets(register: DatasetRegistry) -> None:
    register("folder", FolderDataset, description="images/ + labels/ matched by file stem (or labels/ only)")
    register("synthetic", ResizedSynthetic, description="a synthetic/ folder written by msaug pipeline run")
