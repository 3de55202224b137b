"""What every real-data loader shares: lazy cached samples, square padding, file reading, lung sides.

Real radiographs are rarely square (Montgomery is 4020x4892). Stretching them would
distort the anatomy the stages learn, so loaders pad the short side symmetrically with
black (no X-rays, no structures) and then resize to ``config.size`` with msaug's
label-safe resize.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from msaug import ConfigError, DataConfig, DataError, DataSpec, Sample, read_image, read_label_array, resize_image
from msaug_xray.anatomy import xray_spec



def require_root(config: DataConfig, dataset: str, layout: str) -> Path:
    """The dataset folder, or a message that says which folder is wanted and what belongs in it."""
    if config.root is None:
        raise ConfigError(f"data.root: {dataset} needs the dataset folder ({layout})")
    root = Path(config.root)
    if not root.is_dir():
        raise DataError(f"data.root: folder {root} does not exist ({dataset} expects {layout})")
    return root


def reject_options(config: DataConfig, dataset: str, allowed: Sequence[str] = ()) -> None:
    unknown = sorted(set(config.options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"data.options: {dataset} does not know {', '.join(unknown)} (valid: {valid})")


def find_dir(root: Path, candidates: Sequence[str]) -> Path | None:
    """The first existing sub-folder among ``candidates`` (relative paths) of ``root``."""
    for rel in candidates:
        path = root / rel
        if path.is_dir():
            return path
    return None


def files_by_stem(folder: Path, suffixes: Sequence[str], strip: str = "") -> dict[str, Path]:
    """Files of ``folder`` with one of ``suffixes`` (case-insensitive), by stem less ``strip``."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            stem = path.stem[: -len(strip)] if strip and path.stem.endswith(strip) else path.stem
            out[stem] = path
    return out


def read_grey(path: Path) -> np.ndarray:
    """A PNG/GIF/... radiograph as float32 [H, W] in [0, 1], respecting 8- or 16-bit depth."""
    return read_image(path, channels=1)[0]


def read_mask(path: Path) -> np.ndarray:
    """A binary mask file (any non-zero pixel is the structure) as bool [H, W]."""
    return read_label_array(path) > 0


def pad_square(array: np.ndarray) -> np.ndarray:
    """Pad ``[C, H, W]`` symmetrically with zeros to a square."""
    h, w = array.shape[-2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return np.pad(array, ((0, 0), (top, side - h - top), (left, side - w - left)))


def make_sample(sample_id: str, image: np.ndarray, masks: Sequence[np.ndarray], spec: DataSpec, meta: dict) -> Sample:
    """Pad image ``[H, W]`` and masks to squares and bring them to ``spec.size``.

    Masks may come at another resolution than the image (SCR masks are half the JSRT
    resolution); each is padded and resized on its own, which is exact when both cover
    the same field of view.
    """
    img = torch.from_numpy(pad_square(image[None].astype(np.float32)))
    resized = []
    for mask in masks:
        m = torch.from_numpy(pad_square(mask[None].astype(np.float32)))
        resized.append(spec.label.resize(m, spec.size)[0])
    return Sample(
        id=sample_id,
        image=resize_image(img, spec.size).numpy(),
        label=torch.stack(resized).numpy().astype(np.float32),
        meta=meta,
    )


def lungs_by_side(masks: Sequence[np.ndarray], source: str) -> tuple[np.ndarray, np.ndarray]:
    """(left_lung, right_lung) of the patient from lung regions, by the side of the image they lie on.

    The patient's right lung is the one on the image's left. Regions are taken as given
    (two masks) or split from one combined mask into its two largest connected regions;
    a combined mask whose lungs touch is split at the column between their halves.
    """
    if len(masks) == 1:
        labelled, count = ndimage.label(masks[0], structure=np.ones((3, 3), dtype=bool))
        if count == 0:
            raise DataError(f"{source}: the lung mask is empty")
        sizes = np.bincount(labelled.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        if count >= 2 and sizes[order[1]] >= 0.2 * sizes[order[0]]:
            regions = [labelled == order[0] + 1, labelled == order[1] + 1]
        else:  # lungs touch (or one is tiny): split at the midline of the mask's columns
            cols = np.nonzero(masks[0].any(axis=0))[0]
            mid = (cols.min() + cols.max() + 1) / 2
            columns = np.arange(masks[0].shape[1])[None, :] + 0.5
            regions = [masks[0] & (columns < mid), masks[0] & (columns >= mid)]
    else:
        regions = list(masks)
    centres = []
    for region in regions:
        cols = np.nonzero(region.any(axis=0))[0]
        if cols.size == 0:
            raise DataError(f"{source}: a lung mask is empty")
        centres.append(float(np.nonzero(region)[1].mean()))
    image_left, image_right = (regions[0], regions[1]) if centres[0] < centres[1] else (regions[1], regions[0])
    return image_right, image_left  # patient's left lung is on the image's right


class LazyDataset:
    """Cases read on first access and kept (reading a 2048 px radiograph is the slow part)."""

    def __init__(self, spec: DataSpec, ids: Sequence[str], read: Callable[[str], Sample]):
        self.spec = spec
        self.ids = list(ids)
        self._read = lru_cache(maxsize=None)(read)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        return self._read(self.ids[index])


def limit(ids: list[str], config: DataConfig) -> list[str]:
    return ids[: config.count] if config.count else ids


__all__ = [
    "LazyDataset",
    "files_by_stem",
    "find_dir",
    "limit",
    "lungs_by_side",
    "make_sample",
    "read_grey",
    "read_mask",
    "reject_options",
    "require_root",
    "xray_spec",
]
