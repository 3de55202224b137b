"""Real fundus datasets read from their release folders: files, reading, and the Dataset.

The layouts themselves (which file is whose label and mask) live in
:mod:`msaug_fundus.layouts`; this module turns a list of :class:`CaseFiles` into samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from msaug import ConfigError, DataConfig, DataError, Sample, read_image

from msaug_fundus.fov import fov_from_image
from msaug_fundus.spec import SQUARE_FIT, fundus_spec, native_sample, square_sample



@dataclass(frozen=True)
class CaseFiles:
    """The files of one photograph; ``mask`` is None where the release ships no FOV mask."""

    id: str
    image: Path
    label: Path
    mask: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def read_rgb(path: Path) -> np.ndarray:
    """A photograph as float32 ``[3, H, W]`` in [0, 1] (``*.gz`` files too: STARE ships ``.ppm.gz``)."""
    return read_image(path, channels=3)


def read_binary(path: Path, what: str) -> np.ndarray:
    """A vessel map or FOV mask as ``[H, W]`` bool: 0/255 files (and 0/1 ones) alike."""
    grey = np.rint(read_image(path, channels=1)[0] * 255.0)  # palette files by their grey, as displayed
    if grey.max() <= 1:
        return grey > 0
    return grey >= 128


class RealFundusDataset:
    """Cases of a public fundus release, read on access.

    ``dataset[i]`` is the photograph padded to a square and resized to ``data.size`` (what the
    stages learn from); ``native(i)`` is the same case on its original grid (DRIVE: 584 x 565),
    where segmenters are scored inside the FOV as published results are. ``square_fit`` says
    how the one becomes the other (:func:`msaug_fundus.spec.square_sample`).
    """

    square_fit = SQUARE_FIT

    def __init__(self, name: str, cases: list[CaseFiles], config: DataConfig):
        if config.count is not None:
            cases = cases[: config.count]
        self.name = name
        self.cases = cases
        self.spec = fundus_spec(config.size)
        # only the square samples are cached: native HRF photographs are ~100 MB each
        self._get = lru_cache(maxsize=64)(self._load)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> Sample:
        return self._get(range(len(self.cases))[index])

    def native(self, index: int) -> Sample:
        """Case ``index`` at its original resolution: image ``[3, H, W]``, label ``[2, H, W]``, ROI (the FOV) ``[H, W]``."""
        case = self.cases[range(len(self.cases))[index]]
        image = read_rgb(case.image)
        vessels = read_binary(case.label, "vessel map")
        fov = read_binary(case.mask, "FOV mask") if case.mask is not None else fov_from_image(image)
        for path, arr in ((case.label, vessels), (case.mask, fov)):
            if path is not None and arr.shape != image.shape[1:]:
                raise DataError(
                    f"{path}: size {arr.shape[1]}x{arr.shape[0]} differs from its photograph "
                    f"{case.image.name} ({image.shape[2]}x{image.shape[1]})"
                )
        meta = {"dataset": self.name, "image": str(case.image), "label": str(case.label), **case.meta}
        return native_sample(case.id, image, vessels, fov, meta)

    def _load(self, index: int) -> Sample:
        return square_sample(self.native(index), self.spec.size, self.square_fit)


def dataset_root(config: DataConfig, release: str) -> Path:
    """``data.root`` checked to be an existing folder (``release`` names the expected download)."""
    if config.root is None:
        raise ConfigError(f"data.root: {config.dataset} needs the folder of the {release} release (set data.root=PATH)")
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: {root} is not a folder (expected the {release} release of {config.dataset})")
    return root
