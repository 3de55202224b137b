"""Checking an nnU-Net v2 raw dataset folder: ``msaug data verify`` on one, and every ``msaug export nnunet``.

Beside the ``nnunet`` dataset (:mod:`msaug.builtin.formats`, which reads such folders) and
below the segment layer, so the exporter and the verify command share one checker.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from msaug.builtin.datasets import FolderDataset
from msaug.builtin.formats import (
    NNUNET_FIELDS,
    NNUNET_IMAGE,
    READABLE_ENDINGS,
    ending_of,
    is_nifti,
    read_case_image,
    read_case_label,
    require_nibabel,
)
from msaug.checks import VerifyReport
from msaug.errors import DataError
from msaug.io import read_json


def _nnunet_label_values(labels: Any, where: Path, report: VerifyReport, regions_order: Any) -> set[int] | None:
    """The label values dataset.json declares (regions: every value of every region), or None when unusable."""
    if isinstance(labels, dict) and labels and all(str(k).isdigit() and isinstance(v, str) for k, v in labels.items()):
        labels = {name: int(value) for value, name in labels.items()}  # nnU-Net v1: {"0": "background", ...}
    if not isinstance(labels, dict) or not labels:
        report.problems.append(f"{where}: labels must map class names to values, e.g. {{\"background\": 0, \"liver\": 1}}")
        return None
    values: set[int] = set()
    for name, value in labels.items():
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items):
            report.problems.append(f"{where}: labels[{name!r}] = {value!r} is not a label value (an integer, or a list of them for a region)")
            return None
        values.update(items)
    if labels.get("background") != 0:
        report.problems.append(f"{where}: labels must declare background as 0")
    if sorted(values) != list(range(len(values))):
        report.problems.append(f"{where}: label values must be consecutive from 0, got {sorted(values)}")
    regions = any(isinstance(v, list) for v in labels.values())
    if regions and (not isinstance(regions_order, list) or len(regions_order) != len(labels) - 1):
        report.problems.append(f"{where}: region-based labels need regions_class_order with one entry per region ({len(labels) - 1})")
    return values


def _nnunet_files(folder: Path, ending: str, report: VerifyReport) -> list[Path]:
    """The files of ``folder`` with nnU-Net's ``file_ending``; anything else there is a warning (nnU-Net ignores it)."""
    if not folder.is_dir():
        report.problems.append(f"{folder}: missing (nnU-Net keeps the training cases in imagesTr/ and labelsTr/)")
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.name.endswith(ending) and len(path.name) > len(ending):
            found.append(path)
        else:
            report.warn(f"{path}: {'a folder' if path.is_dir() else f'not a {ending} file'}; nnU-Net ignores it")
    return found


def verify_nnunet(root: Path) -> VerifyReport:
    """An nnU-Net v2 raw dataset: dataset.json, imagesTr/{case}_{XXXX}{ending}, labelsTr/{case}{ending}.

    As nnU-Net's own ``verify_dataset_integrity``: the required fields, a label file for
    every image and every channel's image for every label, numTraining, label values among
    the declared ones, image and label of one size; files are read where msaug can read
    the format (2-D images; an RGB file holds channels R, G, B).
    """
    from msaug.label_values import distinct, lossy_label_message

    def read_image(path: Path) -> np.ndarray:
        return read_case_image(path)[0]

    def read_label_array(path: Path) -> np.ndarray:
        values, kind, _ = read_case_label(path)
        if kind == "colour":
            raise DataError(f"{path}: an RGB label map; nnU-Net label files hold one integer label value per pixel")
        return values

    report = VerifyReport(str(root), "nnU-Net dataset")
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: not found; an nnU-Net v2 raw dataset folder holds dataset.json ({', '.join(NNUNET_FIELDS)}), imagesTr/ and labelsTr/")
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: not a JSON object; nnU-Net's dataset.json holds {', '.join(NNUNET_FIELDS)}")
    channel_names = meta.get("channel_names", meta.get("modality"))  # modality: nnU-Net v1's name, which v2 still reads
    missing = [key for key in NNUNET_FIELDS if (channel_names if key == "channel_names" else meta.get(key)) is None]
    if missing:
        report.problems.append(f"{meta_path}: missing {', '.join(missing)} (nnU-Net v2 needs channel_names, labels, numTraining and file_ending)")
        return report
    ending = meta["file_ending"]
    if not isinstance(ending, str) or not ending.startswith("."):
        report.problems.append(f"{meta_path}: file_ending {ending!r} is not a file ending like '.png' or '.nii.gz'")
        return report
    if not isinstance(channel_names, dict) or sorted(map(str, channel_names)) != [str(c) for c in range(len(channel_names))] or not channel_names:
        report.problems.append(f"{meta_path}: channel_names must map channel numbers from 0 to names, e.g. {{\"0\": \"CT\"}}; got {channel_names!r}")
        return report
    n_channels = len(channel_names)
    declared = _nnunet_label_values(meta["labels"], meta_path, report, meta.get("regions_class_order"))
    if not re.fullmatch(r"Dataset\d{3}_[A-Za-z0-9_-]+", root.name):
        report.warn(f"{root}: nnU-Net finds raw datasets by folder name DatasetXXX_NAME (e.g. Dataset001_{root.name}); rename it before planning")
    readable = ending_of(ending) == ending.lower()
    if not readable:
        report.warn(f"{meta_path}: file_ending {ending!r}: msaug reads {', '.join(READABLE_ENDINGS)} files only; names and counts are checked, contents not")
    elif is_nifti(ending):

        require_nibabel(f"{meta_path}: file_ending {ending!r}")  # one clear message when nibabel is missing, not one per file

    labels = {path.name[: -len(ending)]: path for path in _nnunet_files(root / "labelsTr", ending, report)}
    report.warn(lossy_label_message(labels.values()))
    images: dict[str, dict[int, Path]] = {}
    for path in _nnunet_files(root / "imagesTr", ending, report):
        m = NNUNET_IMAGE.match(path.name[: -len(ending)])
        if m is None:
            report.problems.append(f"{path}: not named CASE_XXXX{ending} (XXXX: the channel, 0000 for the first)")
        else:
            images.setdefault(m["case"], {})[int(m["channel"])] = path
    for case in sorted(set(images) - set(labels)):
        for path in images[case].values():
            report.problems.append(f"{path}: image without a label (no labelsTr/{case}{ending})")
    if meta["numTraining"] != len(labels):
        report.problems.append(f"{meta_path}: numTraining is {meta['numTraining']!r} but labelsTr holds {len(labels)} cases")

    for case, label_path in sorted(labels.items()):
        report.checked += 1
        files = images.get(case, {})
        arrays = {c: report.attempt(read_image, path) for c, path in sorted(files.items())} if readable else {}
        first, needed = arrays.get(0), n_channels
        if first is not None and first.shape[0] == n_channels:
            needed = 1  # one RGB file holds channels R, G, B
        elif readable and 0 in files and first is None:
            needed = min(n_channels, max(files) + 1)  # the first file is unreadable (reported): its channel count is unknown
        for c in range(needed):
            if c not in files:
                report.problems.append(f"{root / 'imagesTr'}/{case}_{c:04d}{ending}: missing (labelsTr/{label_path.name} needs {n_channels} channel{'s' if n_channels > 1 else ''})")
        for c in sorted(set(files) - set(range(needed))):
            report.problems.append(f"{files[c]}: channel {c} is not in dataset.json's channel_names ({n_channels} channel{'s' if n_channels > 1 else ''})")
        if not readable:
            continue
        label = report.attempt(read_label_array, label_path)
        if label is None:
            continue
        bad = sorted(set(distinct(label)) - declared) if declared is not None else []
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
            said = f"label value {shown} is" if len(bad) == 1 else f"label values {shown} are"
            report.problems.append(f"{label_path}: {said} not in dataset.json's labels (valid: {', '.join(map(str, sorted(declared or ())))})")
        for c, array in arrays.items():
            if array is not None:
                report.attempt(FolderDataset._same_size, files[c], array.shape[1:], label_path, label.shape)
    return report


# --- what TARGET is -----------------------------------------------------------------------------


def validate_nnunet(folder: str | Path) -> list[str]:
    """Check a raw dataset against nnU-Net v2's documented format; returns the problems found.

    The same checks as ``msaug data verify`` on an nnU-Net folder (one implementation: an RGB
    file counts as channels R, G and B, as msaug's RGB exports write them).
    """
    return verify_nnunet(Path(folder)).problems
