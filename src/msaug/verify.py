"""Integrity checks of datasets and run folders (``msaug data verify``).

In the spirit of nnU-Net's dataset verification: every file readable, image and label
sizes matching, label values inside the declared classes, images and labels paired by
stem, and (for msaug's own output) every file matching the sha256 in its manifest.
Problems are collected, not raised one at a time, so a user sees all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from msaug.errors import MsaugError


@dataclass
class VerifyReport:
    target: str
    kind: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_sample_arrays(sample: Any, encoding: str, classes: int, where: str) -> list[str]:
    problems = []
    label = np.asarray(sample.label)
    if label.ndim != 3 or label.shape[0] != classes:
        return [f"{where}: label has shape {label.shape}, expected ({classes}, H, W)"]
    if not np.isin(label, (0.0, 1.0)).all():
        problems.append(f"{where}: label channels hold values other than 0 and 1")
    if encoding == "index" and not np.all(label.sum(axis=0) == 1):
        problems.append(f"{where}: index label map without exactly one class per pixel")
    if sample.image is not None:
        image = np.asarray(sample.image)
        if image.shape[1:] != label.shape[1:]:
            problems.append(f"{where}: image is {image.shape[1:]} but label is {label.shape[1:]}")
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            problems.append(f"{where}: image values outside [0, 1] or not finite")
    return problems


def verify_dataset(dataset: Any, target: str, kind: str = "dataset") -> VerifyReport:
    """Load every sample and check it; each failure becomes one problem line."""
    report = VerifyReport(target, kind)
    spec = dataset.spec
    for i in range(len(dataset)):
        where = f"sample {i}"
        try:
            sample = dataset[i]
            where = f"sample {i} ({sample.id})"
        except MsaugError as exc:
            report.problems.append(str(exc))
            continue
        report.checked += 1
        report.problems += _check_sample_arrays(sample, spec.encoding, len(spec.classes), where)
    return report


def verify_synthetic(root: Path) -> VerifyReport:
    from msaug.io import sha256_file
    from msaug.synthetic import SyntheticDataset

    ds = SyntheticDataset(root)
    report = verify_dataset(ds, str(root), "synthetic dataset")
    for e in ds.entries:
        for key in ("image", "label"):
            path = root / e[key]
            if path.is_file() and sha256_file(path) != e.get("sha256", {}).get(key):
                report.problems.append(f"{path}: sha256 does not match manifest.jsonl")
    indices = [e["index"] for e in ds.entries]
    if len(set(indices)) != len(indices):
        report.problems.append(f"{root / 'manifest.jsonl'}: duplicate indices")
    return report


def verify_run(root: Path) -> VerifyReport:
    from msaug.io import read_json, sha256_file

    report = verify_synthetic(root / "synthetic") if (root / "synthetic" / "dataset.json").is_file() else VerifyReport(str(root), "run")
    report.kind, report.target = "run folder", str(root)
    for info_path in sorted((root / "stages").glob("*/stage.json")):
        try:
            info = read_json(info_path)
        except MsaugError as exc:
            report.problems.append(str(exc))
            continue
        weights = info_path.parent / "stage.safetensors"
        if info.get("complete") and (not weights.is_file() or sha256_file(weights) != info.get("sha256")):
            report.problems.append(f"{weights}: missing or sha256 does not match stage.json")
        report.checked += 1
    return report


def verify_target(target: str, root: str | None = None, size: int | None = None, options: dict[str, Any] | None = None,
                  classes: list[str] | None = None, encoding: str | None = None, channels: int | None = None) -> VerifyReport:
    """Verify a run folder, a synthetic folder, a pipeline YAML's data, or a registered dataset."""
    from msaug.data import DataConfig, load_dataset

    path = Path(target)
    if path.is_dir() and (path / "pipeline.resolved.yaml").is_file():
        return verify_run(path)
    if path.is_dir() and (path / "dataset.json").is_file():
        return verify_synthetic(path)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from msaug.pipeline.config import load_pipeline

        data = load_pipeline(path, profile="none").config.data
        return verify_dataset(load_dataset(data), f"{target} (data: {data.dataset})")
    if path.is_dir():
        if not classes:
            raise MsaugError(f"{target}: a plain folder needs --classes (and --encoding for multilabel) to be verified")
        config = DataConfig(dataset="folder", root=path, size=size or 256, classes=classes, encoding=encoding, channels=channels)
        return verify_dataset(load_dataset(config), str(path), "folder dataset")
    config = DataConfig(dataset=target, root=Path(root) if root else None, size=size or 256, options=options or {})
    return verify_dataset(load_dataset(config), target)

