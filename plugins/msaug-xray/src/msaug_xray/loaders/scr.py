"""``xray.scr``: JSRT radiographs with the SCR reference masks, in their original release layout.

Expected under ``data.root`` (the folders as the two archives unpack)::

    All247images/JPCLN001.IMG ...          # JSRT: raw 2048x2048, 12-bit, big-endian, no header
    scratch/fold1/masks/left lung/JPCLN001.gif
    scratch/fold1/masks/right lung/...     # SCR: one folder per structure, 1024x1024 GIFs
    scratch/fold1/masks/heart/...
    scratch/fold1/masks/left clavicle/...
    scratch/fold1/masks/right clavicle/...
    scratch/fold2/masks/...                # the other half of the cases

``fold1/`` and ``fold2/`` may also sit directly under the root (``scratch/`` unpacked
away), and the ``.IMG`` files directly in the root. JSRT stores larger values for darker
film (more transmitted X-rays), so the loader shows ``1 - value / 4095``: bone bright,
lung dark, as in every other xray dataset. Option ``img_size`` (default 2048) sets the
side of the raw files, for the JSRT-format files of other sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msaug import DataConfig, DataError, Sample
from msaug_xray.anatomy import ANATOMY_CLASSES
from msaug_xray.loaders.common import (
    LazyDataset,
    files_by_stem,
    limit,
    make_sample,
    read_mask,
    reject_options,
    require_root,
    xray_spec,
)

JSRT_SIDE = 2048
JSRT_BITS = 12
#: SCR's folder name of each structure, in ANATOMY_CLASSES order
SCR_FOLDERS = {name: name.replace("_", " ") for name in ANATOMY_CLASSES}
LAYOUT = "All247images/*.IMG and scratch/fold1|fold2/masks/{left lung,right lung,heart,left clavicle,right clavicle}/*.gif"


def read_jsrt(path: Path, side: int = JSRT_SIDE) -> np.ndarray:
    """A JSRT ``.IMG`` as float32 [side, side] in [0, 1], bone bright (see the module docstring)."""
    expected = side * side * 2
    size = path.stat().st_size
    if size != expected:
        raise DataError(
            f"{path}: {size} bytes, but a JSRT .IMG of {side}x{side} 16-bit words holds {expected} "
            f"(set data.options.img_size if these files have another side)"
        )
    raw = np.fromfile(path, dtype=">u2").reshape(side, side)
    peak = (1 << JSRT_BITS) - 1
    if int(raw.max()) > peak:
        raise DataError(f"{path}: values up to {int(raw.max())}, but JSRT images are {JSRT_BITS}-bit (at most {peak})")
    return (1.0 - raw.astype(np.float32) / peak).astype(np.float32)


def _mask_folds(root: Path) -> list[Path]:
    folds = [p / "masks" for base in (root / "scratch", root) for p in sorted(base.glob("fold*")) if (p / "masks").is_dir()]
    if not folds:
        raise DataError(f"{root}: no SCR masks found; expected {root}/scratch/fold1/masks/<structure>/*.gif (layout: {LAYOUT})")
    for fold in folds:
        missing = [folder for folder in SCR_FOLDERS.values() if not (fold / folder).is_dir()]
        if missing:
            raise DataError(f"{fold}: missing SCR structure folder(s) {', '.join(repr(m) for m in missing)}")
    return folds


def scr_dataset(config: DataConfig) -> LazyDataset:
    """Dataset factory for ``xray.scr`` (five structures, multilabel)."""
    reject_options(config, "xray.scr", ("img_size",))
    root = require_root(config, "xray.scr", LAYOUT)
    side = int(config.options.get("img_size", JSRT_SIDE))
    image_dir = root / "All247images" if (root / "All247images").is_dir() else root
    images = files_by_stem(image_dir, (".img",))
    if not images:
        raise DataError(f"{root}: no JSRT images; expected {root}/All247images/*.IMG (layout: {LAYOUT})")
    masks: dict[str, dict[str, Path]] = {}  # case -> structure -> gif
    for fold in _mask_folds(root):
        per_structure = {name: files_by_stem(fold / folder, (".gif",)) for name, folder in SCR_FOLDERS.items()}
        for case in set().union(*per_structure.values()):
            missing = [SCR_FOLDERS[n] for n, files in per_structure.items() if case not in files]
            if missing:
                raise DataError(f"{fold}: case {case} has no mask in {', '.join(repr(m) for m in missing)}")
            masks[case] = {n: files[case] for n, files in per_structure.items()}
    cases = sorted(set(images) & set(masks))
    if not cases:
        raise DataError(
            f"{root}: no case has both a JSRT image and SCR masks "
            f"(images e.g. {', '.join(sorted(images)[:3])}; masks e.g. {', '.join(sorted(masks)[:3]) or 'none'})"
        )
    spec = xray_spec(config.size, ANATOMY_CLASSES)

    def read(case: str) -> Sample:
        image = read_jsrt(images[case], side)
        structures = [read_mask(masks[case][name]) for name in ANATOMY_CLASSES]
        return make_sample(case, image, structures, spec, {"image_file": str(images[case])})

    return LazyDataset(spec, limit(cases, config), read)
