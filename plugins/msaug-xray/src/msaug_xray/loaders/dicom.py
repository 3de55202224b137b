"""DICOM radiographs: :func:`read_dicom` and the ``xray.dicom`` dataset for user folders.

``read_dicom`` honours what a radiograph's header says about its pixels: ``BitsStored``
(a 12-bit image in 16-bit words is scaled by 4095, not 65535), ``PixelRepresentation``
(signed values) and ``PhotometricInterpretation`` (``MONOCHROME1`` stores bright as low
values and is inverted, so bone is always bright). pydicom is an optional extra:
``pip install msaug-xray[dicom]``.

``xray.dicom`` layout under ``data.root``::

    images/<case>.dcm
    masks/<structure>/<case>.png    # one binary mask folder per class

Classes default to the five SCR structures; ``data.classes`` picks others (e.g. only
``[left_lung, right_lung]``), each needing its ``masks/<name>/`` folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from msaug import ConfigError, DataConfig, DataError, Sample
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

LAYOUT = "images/*.dcm with masks/<structure>/<case>.png"


def read_dicom(path: Path) -> np.ndarray:
    """A single-frame grey DICOM radiograph as float32 [H, W] in [0, 1], bone bright."""
    try:
        import pydicom
    except ImportError:
        raise ConfigError("reading DICOM needs pydicom: pip install 'msaug-xray[dicom]'") from None
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:  # pydicom raises many types for corrupt or pixel-less files
        raise DataError(f"{path}: cannot read DICOM pixels ({type(exc).__name__}: {exc})") from None
    if pixels.ndim != 2:
        raise DataError(f"{path}: expected one grey frame, got pixel array of shape {pixels.shape}")
    bits = int(getattr(ds, "BitsStored", pixels.dtype.itemsize * 8))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    values = pixels.astype(np.float64)
    if signed:
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    else:
        values = np.asarray(pixels, dtype=np.int64) & ((1 << bits) - 1)  # ignore bits above BitsStored
        low, high = 0.0, 2.0**bits - 1
    image = (np.clip(values, low, high) - low) / (high - low)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def dicom_dataset(config: DataConfig) -> LazyDataset:
    """Dataset factory for ``xray.dicom``."""
    reject_options(config, "xray.dicom")
    root = require_root(config, "xray.dicom", LAYOUT)
    classes = tuple(config.classes) if config.classes else ANATOMY_CLASSES
    if not (root / "images").is_dir():
        raise DataError(f"{root}: no images/ folder (xray.dicom expects {LAYOUT})")
    missing = [name for name in classes if not (root / "masks" / name).is_dir()]
    if missing:
        raise DataError(f"{root}: missing mask folder(s) {', '.join(f'masks/{m}/' for m in missing)} (xray.dicom expects {LAYOUT})")
    images = files_by_stem(root / "images", (".dcm", ".dicom"))
    if not images:
        raise DataError(f"{root}/images: no .dcm files (xray.dicom expects {LAYOUT})")
    masks = {name: files_by_stem(root / "masks" / name, (".png", ".gif", ".bmp", ".tif", ".tiff")) for name in classes}
    for name, files in masks.items():
        lacking = sorted(set(images) - set(files))
        if lacking:
            raise DataError(f"{root}/masks/{name}: no mask for case(s) {', '.join(lacking[:5])}")
    spec = xray_spec(config.size, classes)

    def read(case: str) -> Sample:
        image = read_dicom(images[case])
        structures = [read_mask(masks[name][case]) for name in classes]
        for name, mask in zip(classes, structures):
            if mask.shape != image.shape:
                raise DataError(f"{masks[name][case]}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {image.shape[1]}x{image.shape[0]}")
        return make_sample(case, image, structures, spec, {"image_file": str(images[case])})

    return LazyDataset(spec, limit(sorted(images), config), read)
