"""Exporting a synthetic dataset to nnU-Net v2 and MONAI.

nnU-Net v2 raw dataset (``nnUNet_raw/DatasetNNN_NAME``), as its ``dataset_format.md``
documents: ``imagesTr/{case}_{XXXX}.png`` (one file per channel; an RGB PNG is one file
holding channels R, G, B, as in nnU-Net's own natural-image datasets),
``labelsTr/{case}.png`` with consecutive integer labels, and ``dataset.json`` with
``channel_names``, ``labels``, ``numTraining`` and ``file_ending``.

Overlapping (multilabel) structures cannot be one integer per class, so they are
exported as nnU-Net *regions*: each pixel's label value is its bit mask (bit k set when
channel k is on, exactly as msaug stores it), every structure is declared as the region
of the values with its bit set, and ``regions_class_order`` gives the value written for
each region at inference (``2**k``; nnU-Net writes later regions over earlier ones).

MONAI: a decathlon-style datalist JSON (``training``: ``[{"image", "label"}]``, paths
relative to the JSON's folder, as ``monai.data.load_decathlon_datalist`` resolves them).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msaug.errors import ConfigError, DataError
from msaug.io import image_to_array, read_json, write_json, write_png
from msaug.sample import Dataset
from msaug.segment.qc import manifest_scores

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
#: ``reference`` in the dataset.json of every nnU-Net dataset msaug exports: only those are ever replaced
NNUNET_REFERENCE = "generated with msaug"
#: ``written_by`` in every MONAI datalist msaug exports: only those are ever overwritten
MONAI_WRITTEN_BY = "msaug export monai"


def read_synthetic(synthetic_dir: str | Path, qc_min_dice: float | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dataset description and the manifest entries kept by the QC filter, files checked."""
    from msaug.synthetic import DESCRIPTION, read_manifest

    root = Path(synthetic_dir)
    if not (root / DESCRIPTION).is_file():
        raise DataError(f"{root}: no {DESCRIPTION}; not a synthetic dataset folder written by msaug")
    description = read_json(root / DESCRIPTION)
    for key in ("classes", "encoding", "channels"):
        if key not in description:
            raise DataError(f"{root / DESCRIPTION}: missing field {key!r}")
    entries = sorted(read_manifest(root), key=lambda e: int(e["index"]))
    if qc_min_dice is not None:
        scores = manifest_scores(entries, str(root / "manifest.jsonl"))
        entries = [e for e, s in zip(entries, scores) if s >= qc_min_dice]
    for e in entries:
        for key in ("image", "label"):
            if not (root / e[key]).is_file():
                raise DataError(f"{root / e[key]}: listed in the manifest (index {e['index']}) but missing")
    return description, entries


def _channel_names(channels: int, domain: str) -> dict[str, str]:
    if channels == 3:
        return {"0": "R", "1": "G", "2": "B"}
    return {str(c): (domain if channels == 1 and domain != "generic" else f"channel{c}") for c in range(channels)}


def nnunet_labels(classes: list[str], encoding: str) -> tuple[dict[str, Any], list[int] | None]:
    """``labels`` for dataset.json and ``regions_class_order`` (``None`` unless multilabel)."""
    if encoding == "index":
        names = ["background", *classes[1:]]
        return {name: i for i, name in enumerate(names)}, None
    values = range(1, 1 << len(classes))
    labels: dict[str, Any] = {"background": 0}
    for k, name in enumerate(classes):
        labels[name] = [v for v in values if v >> k & 1]
    return labels, [1 << k for k in range(len(classes))]


def _label_for_export(label: np.ndarray, encoding: str) -> np.ndarray:
    from msaug.synthetic import label_to_array

    return label_to_array(torch.as_tensor(label), encoding)


def export_nnunet(
    synthetic_dir: str | Path,
    out: str | Path,
    dataset_id: int,
    name: str,
    qc_min_dice: float | None = None,
    real: Dataset | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out/Dataset{id:03d}_{name}``; returns that folder.

    ``real`` (the real training split) is merged in when given, as cases ``real_*``; its
    images are written at the synthetic data's bit depth.
    """
    if not 1 <= dataset_id <= 999:
        raise ConfigError(f"--dataset-id must be between 1 and 999 (nnU-Net uses three digits), got {dataset_id}")
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '-' and '_' only (it becomes a folder name)")
    description, entries = read_synthetic(synthetic_dir, qc_min_dice)
    root = Path(synthetic_dir)
    out = Path(out)
    _check_parents(out, "--out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; name the nnUNet_raw folder (DatasetNNN_NAME is created inside)")
    target = out / f"Dataset{dataset_id:03d}_{name}"
    existing = sorted(out.glob(f"Dataset{dataset_id:03d}_*")) if out.is_dir() else []
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} already exists (nnU-Net dataset ids must be unique); pass --overwrite or another --dataset-id")
    for folder in existing:
        if not _written_by_msaug(folder / "dataset.json", "reference", NNUNET_REFERENCE):
            raise ConfigError(f"{folder}: not a dataset written by msaug export; msaug will not delete it. Choose another --dataset-id")
    # everything is written into a hidden folder that takes the final name only when complete,
    # so a failed or interrupted export leaves no half-written dataset for nnU-Net to find
    partial = out / f".{target.name}.{os.getpid()}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        _write_nnunet(root, partial, entries, description, name, real)
        for folder in existing:
            shutil.rmtree(folder)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def _check_parents(path: Path, option: str) -> None:
    """A ``path`` below an existing file cannot be written; say so instead of an OS error."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent}: exists and is not a folder")
            return


def _written_by_msaug(path: Path, key: str, value: str) -> bool:
    try:
        meta = read_json(path)
    except DataError:
        return False
    return isinstance(meta, dict) and meta.get(key) == value


def _write_nnunet(root: Path, target: Path, entries: list[dict[str, Any]], description: dict[str, Any], name: str, real: Dataset | None) -> None:
    classes, encoding, channels = list(description["classes"]), description["encoding"], int(description["channels"])
    images_dir, labels_dir = target / "imagesTr", target / "labelsTr"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)

    for e in entries:
        case = f"synth_{int(e['index']):06d}"
        shutil.copyfile(root / e["image"], images_dir / f"{case}_0000.png")
        shutil.copyfile(root / e["label"], labels_dir / f"{case}.png")
    real_count = 0
    if real is not None:
        if list(real.spec.classes) != classes or real.spec.encoding != encoding or real.spec.channels != channels:
            raise DataError(
                f"the real dataset ({list(real.spec.classes)}, {real.spec.encoding}, {real.spec.channels} ch) does not match "
                f"the synthetic one ({classes}, {encoding}, {channels} ch)"
            )
        bit_depth = int(description.get("bit_depth", 8))
        for i in range(len(real)):
            sample = real[i]
            case = f"real_{i:06d}"
            write_png(images_dir / f"{case}_0000.png", image_to_array(np.asarray(sample.image), bit_depth))
            write_png(labels_dir / f"{case}.png", _label_for_export(np.asarray(sample.label), encoding))
            real_count += 1

    labels, regions = nnunet_labels(classes, encoding)
    dataset_json: dict[str, Any] = {
        "name": name,
        "description": f"msaug synthetic pairs from {root}" + (" merged with the real training split" if real_count else ""),
        "reference": NNUNET_REFERENCE,
        "channel_names": _channel_names(channels, str(description.get("domain", "generic"))),
        "labels": labels,
        "numTraining": len(entries) + real_count,
        "file_ending": ".png",
    }
    if regions is not None:
        dataset_json["regions_class_order"] = regions
    write_json(target / "dataset.json", dataset_json)


def validate_nnunet(folder: str | Path) -> list[str]:
    """Check a raw dataset against nnU-Net v2's documented format; returns the problems found.

    The same checks as ``msaug data verify`` on an nnU-Net folder (one implementation: an RGB
    file counts as channels R, G and B, as msaug's RGB exports write them).
    """
    from msaug.verify import verify_nnunet

    return verify_nnunet(Path(folder)).problems


def export_monai(synthetic_dir: str | Path, out_file: str | Path, qc_min_dice: float | None = None, overwrite: bool = False) -> Path:
    """Write a MONAI decathlon-style datalist JSON for the synthetic pairs; returns its path.

    An existing file is replaced only with ``overwrite`` and only when msaug wrote it.
    """
    out_file = Path(out_file)
    if out_file.is_dir():
        raise ConfigError(f"--out {out_file}: is a folder; name the datalist file, e.g. --out {out_file / 'datalist.json'}")
    _check_parents(out_file, "--out")
    if out_file.exists() and not overwrite:
        raise ConfigError(f"--out {out_file}: the file exists; pass --overwrite to replace a datalist msaug wrote, or name another file")
    if out_file.exists() and not _written_by_msaug(out_file, "written_by", MONAI_WRITTEN_BY):
        raise ConfigError(f"--out {out_file}: not a datalist written by msaug export monai; msaug will not overwrite it. Name another file")
    description, entries = read_synthetic(synthetic_dir, qc_min_dice)
    root = Path(synthetic_dir).resolve()
    base = out_file.resolve().parent

    def rel(p: str) -> str:
        return Path(os.path.relpath(root / p, base)).as_posix()

    classes, encoding = list(description["classes"]), description["encoding"]
    bit_depth = _bit_depth(root, description, entries)
    training = []
    for e in entries:
        item: dict[str, Any] = {"image": rel(e["image"]), "label": rel(e["label"]), "index": int(e["index"])}
        if "qc_dice" in e:
            item["qc_dice"] = e["qc_dice"]
        training.append(item)
    datalist = {
        "name": f"msaug synthetic ({root.name})",
        "written_by": MONAI_WRITTEN_BY,
        "description": "generated image/label pairs; labels: "
        + ("class index per pixel" if encoding == "index" else "bit mask per pixel, bit k = channel k"),
        "labels": {str(i): c for i, c in enumerate(classes)} if encoding == "index" else {str(1 << k): c for k, c in enumerate(classes)},
        "encoding": encoding,
        # what a loader needs to decode and scale the pairs (msaug.monai.datalist_transforms reads these)
        "classes": classes,
        "label_format": "class index per pixel" if encoding == "index" else "bit mask per pixel, bit k = channel k",
        "label_transform": "msaug.monai.DecodeLabelsd (one 0/1 channel per class, in the order of classes)",
        "channels": int(description["channels"]),
        "bit_depth": bit_depth,
        "intensity_range": [0, (1 << bit_depth) - 1],
        "intensity_transform": f"ScaleIntensityRanged(a_min=0, a_max={(1 << bit_depth) - 1}, b_min=0, b_max=1) gives msaug's [0, 1] images",
        "numTraining": len(training),
        "training": training,
    }
    write_json(out_file, datalist)
    return out_file


def _bit_depth(root: Path, description: dict[str, Any], entries: list[dict[str, Any]]) -> int:
    """The images' bits per sample: the set's description, or (sets that predate it) the first image."""
    if "bit_depth" in description:
        return int(description["bit_depth"])
    if not entries:
        return 8
    from PIL import Image as PILImage

    with PILImage.open(root / entries[0]["image"]) as img:
        return 16 if img.mode.startswith("I") else 8
