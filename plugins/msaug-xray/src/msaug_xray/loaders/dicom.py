"""DICOM radiographs: :func:`read_dicom` and the ``xray.dicom`` dataset for user folders.

``read_dicom`` gives the image a DICOM viewer shows, through pydicom's own LUT functions:
the stored values (``BitsStored`` of them in each word, signed when ``PixelRepresentation``
is 1) go through the Modality LUT (``RescaleSlope`` / ``RescaleIntercept`` or a Modality
LUT Sequence, ``apply_modality_lut``) and the VOI LUT (a VOI LUT Sequence, or
``WindowCenter`` / ``WindowWidth`` windowing, ``apply_voi_lut``), and the output range
those define (the LUT's entry depth, or the rescaled stored range) is mapped to [0, 1];
``MONOCHROME1`` (bright stored as low) is inverted last, so bone is always bright.
pydicom is an optional extra: ``pip install msaug-xray[dicom]``.

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
    """A single-frame grey DICOM radiograph as float32 [H, W] in [0, 1], as displayed, bone bright."""
    try:
        import pydicom
    except ImportError:
        raise ConfigError("reading DICOM needs pydicom: pip install 'msaug-xray[dicom]'") from None
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
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
    if not signed:
        pixels = np.asarray(pixels, dtype=np.int64) & ((1 << bits) - 1)  # ignore bits above BitsStored
    try:
        values = apply_modality_lut(pixels, ds)
        low, high = _modality_range(ds, bits, signed)
        if ds.get("VOILUTSequence"):
            values = np.rint(values).astype(np.int64)  # a VOI LUT is indexed by whole modality values
            low, high = 0.0, 2.0 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
            _widen_8_bit_voi_lut(ds)
        values = apply_voi_lut(values, ds)  # the LUT, else the window (output in [low, high]), else unchanged
    except Exception as exc:  # a header the LUT functions cannot use (one window value of two, a bad LUT)
        raise DataError(f"{path}: cannot apply the header's modality/VOI LUT ({type(exc).__name__}: {exc})") from None
    if high <= low:
        raise DataError(f"{path}: the modality/VOI LUT output range [{low:g}, {high:g}] is empty")
    image = (np.clip(np.asarray(values, dtype=np.float64), low, high) - low) / (high - low)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)


def _widen_8_bit_voi_lut(ds: object) -> None:
    """Declare an 8-bit-entry VOI LUT as 16-bit (same entries) before pydicom applies it.

    pydicom 3.0's ``apply_voi`` holds the LUT *indices* in the entries' dtype, so with 8-bit
    entries every index above 255 wraps (a 4096-entry LUT maps stored 1024 to entry 0); uint16
    holds both. The output range stays the declared 8 bits (``read_dicom`` took it before).
    """
    item = ds.VOILUTSequence[0]  # type: ignore[attr-defined]
    descriptor = list(item.LUTDescriptor)
    if descriptor[2] == 8 and (descriptor[0] or 65536) > 256:
        item.LUTDescriptor = [descriptor[0], descriptor[1], 16]


def _modality_range(ds: object, bits: int, signed: bool) -> tuple[float, float]:
    """The range of the Modality LUT's output, as pydicom's windowing takes it (PS3.3 C.11.1.1.1)."""
    sequence = getattr(ds, "ModalityLUTSequence", None)
    if sequence:
        return 0.0, 2.0 ** int(sequence[0].LUTDescriptor[2]) - 1
    low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
    slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1]


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
