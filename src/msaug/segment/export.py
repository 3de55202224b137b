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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from msaug.errors import ConfigError, DataError
from msaug.io import image_to_array, read_json, read_label_array, write_json, write_png
from msaug.label_encoding import file_format, file_value, to_file
from msaug.label_values import distinct
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
    return labels, [file_value(k, encoding) for k in range(len(classes))]


def _label_for_export(label: np.ndarray, encoding: str) -> np.ndarray:
    return to_file(torch.as_tensor(label), encoding)


def export_nnunet(
    synthetic_dir: str | Path,
    out: str | Path,
    dataset_id: int,
    name: str,
    qc_min_dice: float | None = None,
    real: Dataset | None = None,
    overwrite: bool = False,
    real_test: Dataset | None = None,
) -> Path:
    """Write ``out/Dataset{id:03d}_{name}``; returns that folder.

    ``real`` (the real training split) is merged in when given, as cases ``real_*``; its
    images are written at the synthetic data's bit depth. ``real_test`` (the held-out real
    cases) goes to ``imagesTs`` / ``labelsTs`` as cases ``test_*``: nnU-Net predicts
    ``imagesTs`` and ignores ``labelsTs``, which holds their labels for scoring the predictions.
    Overlapping channels become regions (see the module docstring); :func:`export_nnunet_split`
    writes them so that no pixel loses a label.
    """
    _check_id_and_name(dataset_id, name)
    description, entries = read_synthetic(synthetic_dir, qc_min_dice)
    root = Path(synthetic_dir)
    out = Path(out)
    existing = _nnunet_targets(out, [dataset_id], overwrite)
    target = out / f"Dataset{dataset_id:03d}_{name}"
    _write_atomically(out, target, existing[dataset_id], lambda partial: _write_nnunet(root, partial, entries, description, name, real, real_test=real_test))
    return target


def _check_id_and_name(dataset_id: int, name: str, count: int = 1) -> None:
    if not 1 <= dataset_id <= 999 or dataset_id + count - 1 > 999:
        needs = f" (the split writes {count} datasets, with consecutive ids from it)" if count > 1 else ""
        raise ConfigError(f"--dataset-id must be between 1 and {1000 - count}{needs} (nnU-Net uses three digits), got {dataset_id}")
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '-' and '_' only (it becomes a folder name)")


def _nnunet_targets(out: Path, ids: list[int], overwrite: bool) -> dict[int, list[Path]]:
    """The existing datasets each of ``ids`` would replace, checked: only with ``overwrite`` and only ones msaug wrote."""
    _check_parents(out, "--out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; name the nnUNet_raw folder (DatasetNNN_NAME is created inside)")
    found = {}
    for dataset_id in ids:
        existing = sorted(out.glob(f"Dataset{dataset_id:03d}_*")) if out.is_dir() else []
        if existing and not overwrite:
            raise ConfigError(f"{existing[0]} already exists (nnU-Net dataset ids must be unique); pass --overwrite or another --dataset-id")
        for folder in existing:
            if not _written_by_msaug(folder / "dataset.json", "reference", NNUNET_REFERENCE):
                raise ConfigError(f"{folder}: not a dataset written by msaug export; msaug will not delete it. Choose another --dataset-id")
        found[dataset_id] = existing
    return found


def _write_atomically(out: Path, target: Path, existing: list[Path], write: Callable[[Path], None]) -> None:
    """``write`` a dataset into a hidden folder that takes ``target``'s name only when complete (replacing ``existing``).

    A failed or interrupted export leaves no half-written dataset for nnU-Net to find.
    """
    partial = out / f".{target.name}.{os.getpid()}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        write(partial)
        for folder in existing:
            shutil.rmtree(folder)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


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


def _write_nnunet(root: Path, target: Path, entries: list[dict[str, Any]], description: dict[str, Any], name: str,
                  real: Dataset | None, group: list[int] | None = None, note: str = "", real_test: Dataset | None = None) -> None:
    """The dataset's files; ``group`` (channel numbers of multilabel data): only those channels, as classes 1, 2, ...

    Without ``group`` the label PNGs are copied as msaug stores them (class indices, or bit masks
    declared as regions); with it each pixel holds the position in ``group`` of its one channel
    (the group's channels never overlap), a plain nnU-Net label map.
    """
    classes, encoding, channels = list(description["classes"]), description["encoding"], int(description["channels"])
    images_dir, labels_dir = target / "imagesTr", target / "labelsTr"
    images_dir.mkdir(parents=True)
    labels_dir.mkdir(parents=True)

    for e in entries:
        case = f"synth_{int(e['index']):06d}"
        shutil.copyfile(root / e["image"], images_dir / f"{case}_0000.png")
        if group is None:
            shutil.copyfile(root / e["label"], labels_dir / f"{case}.png")
        else:
            write_png(labels_dir / f"{case}.png", group_label(read_label_array(root / e["label"]), group))
    bit_depth = int(description.get("bit_depth", 8))
    real_count = _write_real(real, images_dir, labels_dir, "real", classes, encoding, channels, bit_depth, group)
    if real_test is not None and len(real_test):  # the held-out real cases, for scoring nnU-Net's predictions
        _write_real(real_test, target / "imagesTs", target / "labelsTs", "test", classes, encoding, channels, bit_depth, group)

    if group is None:
        labels, regions = nnunet_labels(classes, encoding)
    else:
        labels, regions = {"background": 0, **{classes[c]: k + 1 for k, c in enumerate(group)}}, None
    dataset_json: dict[str, Any] = {
        "name": name,
        "description": f"msaug synthetic pairs from {root}" + (" merged with the real training split" if real_count else "") + note,
        "reference": NNUNET_REFERENCE,
        "channel_names": _channel_names(channels, str(description.get("domain", "generic"))),
        "labels": labels,
        "numTraining": len(entries) + real_count,
        "file_ending": ".png",
    }
    if regions is not None:
        dataset_json["regions_class_order"] = regions
    write_json(target / "dataset.json", dataset_json)


def _write_real(real: Dataset | None, images_dir: Path, labels_dir: Path, prefix: str, classes: list[str], encoding: str,
                channels: int, bit_depth: int, group: list[int] | None) -> int:
    """Cases ``{prefix}_NNNNNN`` of a real dataset (images at the synthetic set's bit depth); returns how many."""
    if real is None:
        return 0
    if list(real.spec.classes) != classes or real.spec.encoding != encoding or real.spec.channels != channels:
        raise DataError(
            f"the real dataset ({list(real.spec.classes)}, {real.spec.encoding}, {real.spec.channels} ch) does not match "
            f"the synthetic one ({classes}, {encoding}, {channels} ch)"
        )
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    for i in range(len(real)):
        sample = real[i]
        case = f"{prefix}_{i:06d}"
        write_png(images_dir / f"{case}_0000.png", image_to_array(np.asarray(sample.image), bit_depth))
        label = _label_for_export(np.asarray(sample.label), encoding)
        write_png(labels_dir / f"{case}.png", label if group is None else group_label(label, group))
    return len(real)


# --- --overlaps split: one dataset per group of channels that never overlap -------------------------

#: ``written_by`` of the channel map ``msaug export nnunet --overlaps split`` writes beside the datasets
SPLIT_WRITTEN_BY = "msaug export nnunet --overlaps split"


def group_label(bits: np.ndarray, group: list[int]) -> np.ndarray:
    """Bit-mask label values to the group's class values: ``k + 1`` where channel ``group[k]`` is on, else 0."""
    out = np.zeros(bits.shape, dtype=np.uint8)
    for k, channel in enumerate(group):
        out[(bits.astype(np.int64) >> channel) & 1 == 1] = k + 1
    return out


def overlapping_pairs(values: set[int], channels: int) -> set[tuple[int, int]]:
    """The channel pairs ``(i, j)``, ``i < j``, that some stored bit mask among ``values`` turns on together."""
    pairs = set()
    for v in values:
        on = [k for k in range(channels) if v >> k & 1]
        pairs.update((a, b) for n, a in enumerate(on) for b in on[n + 1:])
    return pairs


def overlap_groups(channels: int, pairs: set[tuple[int, int]]) -> list[list[int]]:
    """Channels ``0..channels-1`` in groups of mutually non-overlapping ones, as few as a greedy colouring finds.

    Each channel, in order, joins the first group none of whose channels it overlaps, so
    channels that never overlap anything stay together and the groups keep channel order.
    """
    groups: list[list[int]] = []
    for c in range(channels):
        for group in groups:
            if not any((min(c, g), max(c, g)) in pairs for g in group):
                group.append(c)
                break
        else:
            groups.append([c])
    return groups


def export_nnunet_split(synthetic_dir: str | Path, out: str | Path, dataset_id: int, name: str, qc_min_dice: float | None = None,
                        real: Dataset | None = None, overwrite: bool = False, real_test: Dataset | None = None) -> tuple[list[Path], Path]:
    """Multilabel pairs as one nnU-Net dataset per group of channels that never overlap; ``(folders, channel map)``.

    nnU-Net predicts one value per pixel, so region-based training (:func:`export_nnunet`) gives
    an overlapping pixel the last region only (a lung+clavicle pixel loses the lung). Here the
    channels are grouped so that no two channels of a group are ever on at one pixel (among
    every exported pair), and each group becomes a plain nnU-Net dataset,
    ``Dataset{id + g:03d}_{name}_group{g + 1}``, whose classes are the group's channels:
    every pixel keeps every label. ``out/{name}.split.json`` says which channel went to which
    dataset and class value; nnU-Net's predictions of the datasets together give every channel back.
    """
    description, entries = read_synthetic(synthetic_dir, qc_min_dice)
    classes, encoding = list(description["classes"]), description["encoding"]
    if encoding != "multilabel":
        raise ConfigError(
            f"--overlaps split: {synthetic_dir} holds {encoding} labels (one class per pixel), which never overlap; "
            "leave --overlaps out (regions, the default, exports them as one dataset)"
        )
    root, out = Path(synthetic_dir), Path(out)
    values: set[int] = set()
    for e in entries:
        values.update(distinct(read_label_array(root / e["label"])))
    for cases in (real, real_test):  # the test cases too: their labels are written per group as well
        for i in range(len(cases) if cases is not None else 0):
            values.update(distinct(_label_for_export(np.asarray(cases[i].label), "multilabel")))
    pairs = overlapping_pairs(values, len(classes))
    groups = overlap_groups(len(classes), pairs)
    _check_id_and_name(dataset_id, name, len(groups))
    ids = [dataset_id + g for g in range(len(groups))]
    existing = _nnunet_targets(out, ids, overwrite)
    index = out / f"{name}.split.json"
    if index.exists() and not (overwrite and _written_by_msaug(index, "written_by", SPLIT_WRITTEN_BY)):
        raise ConfigError(f"{index}: exists" + ("; it is not a channel map msaug wrote, so msaug will not replace it" if overwrite else "; pass --overwrite to replace an export msaug wrote")
                          + ", or choose another --name")
    folders, datasets = [], []
    for g, (group, dataset) in enumerate(zip(groups, ids)):
        group_name = f"{name}_group{g + 1}"
        target = out / f"Dataset{dataset:03d}_{group_name}"
        note = f"; channels {', '.join(classes[c] for c in group)} (group {g + 1} of {len(groups)}, see {index.name})"
        _write_atomically(out, target, existing[dataset],
                          lambda partial, group=group, group_name=group_name, note=note: _write_nnunet(root, partial, entries, description, group_name, real, group, note, real_test))
        folders.append(target)
        datasets.append({
            "folder": target.name, "dataset_id": dataset, "channels": [classes[c] for c in group], "channel_indices": group,
            "labels": {"background": 0, **{classes[c]: k + 1 for k, c in enumerate(group)}},
        })
    write_json(index, {
        "written_by": SPLIT_WRITTEN_BY,
        "source": str(root.resolve()),
        "classes": classes,
        "encoding": "multilabel",
        "overlapping": [[classes[a], classes[b]] for a, b in sorted(pairs)],
        "how_to_merge": "channel c is on where the prediction of its dataset holds its label value (datasets[].labels)",
        "datasets": datasets,
    })
    return folders, index


def merge_split_labels(index: str | Path | dict[str, Any], label_maps: dict[str, np.ndarray]) -> np.ndarray:
    """The bit-mask label map (bit k = channel k) of one case from its label maps in each split dataset.

    ``index`` is the ``{name}.split.json`` of :func:`export_nnunet_split` (a path or its
    contents); ``label_maps`` maps each dataset folder name to the case's ``[H, W]`` label map
    there (a labelsTr file, or nnU-Net's prediction). Missing datasets are a DataError naming them.
    """
    meta = read_json(Path(index)) if not isinstance(index, dict) else index
    missing = [d["folder"] for d in meta["datasets"] if d["folder"] not in label_maps]
    if missing:
        raise DataError(f"merge: no label map for {', '.join(missing)} (every split dataset holds some of the channels)")
    shape = next(iter(label_maps.values())).shape
    bits = np.zeros(shape, dtype=np.int64)
    for d in meta["datasets"]:
        values = np.asarray(label_maps[d["folder"]]).astype(np.int64)
        if values.shape != shape:
            raise DataError(f"merge: the label map for {d['folder']} is {values.shape}, the others {shape}")
        for channel, value in zip(d["channel_indices"], (d["labels"][c] for c in d["channels"])):
            bits |= (values == value).astype(np.int64) << channel
    return bits


def merge_split_predictions(index: str | Path, folders: list[str | Path], out: str | Path) -> list[Path]:
    """Merge one folder of label maps per split dataset (nnU-Net's PNG predictions) into bit-mask label maps in ``out``.

    ``folders`` are in the order of the channel map's ``datasets``; every folder must hold the
    same cases (``{case}.png``). Each merged ``out/{case}.png`` holds bit k where channel k is on
    (8-bit up to 8 channels, else 16-bit), as msaug stores multilabel maps; returns the files.
    """
    index, out = Path(index), Path(out)
    if not index.is_file():
        raise DataError(f"{index}: no such file; name the NAME.split.json that msaug export nnunet --overlaps split wrote")
    meta = read_json(index)
    if not isinstance(meta, dict) or meta.get("written_by") != SPLIT_WRITTEN_BY:
        raise DataError(f"{index}: not a channel map written by msaug export nnunet --overlaps split")
    datasets = meta["datasets"]
    if len(folders) != len(datasets):
        names = ", ".join(d["folder"] for d in datasets)
        raise ConfigError(f"{index} splits the channels over {len(datasets)} datasets ({names}); give one folder of label maps for each, in that order, not {len(folders)}")
    _check_parents(out, "--out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty folder; name a new folder for the merged label maps")
    cases: list[dict[str, Path]] = []
    for folder, d in zip(map(Path, folders), datasets):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder (label maps of {d['folder']})")
        cases.append({p.name: p for p in sorted(folder.glob("*.png")) if not p.name.startswith(".")})
    names = sorted(set().union(*cases))
    if not names:
        raise DataError(f"{', '.join(map(str, folders))}: no .png label maps to merge")
    for folder, files in zip(folders, cases):
        missing = [n for n in names if n not in files]
        if missing:
            raise DataError(f"{Path(folder) / missing[0]}: missing; every folder needs every case ({len(missing)} missing there)")
    written = []
    dtype = np.uint8 if len(meta["classes"]) <= 8 else np.uint16
    for name in names:
        maps = {}
        for files, d in zip(cases, datasets):
            values = read_label_array(files[name])
            top = len(d["channels"])
            if values.size and int(values.max()) > top:
                raise DataError(f"{files[name]}: label value {int(values.max())} is not one of {d['folder']}'s labels (0..{top})")
            maps[d["folder"]] = values
        write_png(out / name, merge_split_labels(meta, maps).astype(dtype))
        written.append(out / name)
    return written


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
        + file_format(encoding, per_pixel=True),
        "labels": {str(file_value(k, encoding)): c for k, c in enumerate(classes)},
        "encoding": encoding,
        # what a loader needs to decode and scale the pairs (msaug.monai.datalist_transforms reads these)
        "classes": classes,
        "label_format": file_format(encoding, per_pixel=True),
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
