"""Integrity checks of datasets and run folders (``msaug data verify``).

In the spirit of nnU-Net's dataset verification: every file readable, image and label
sizes matching, label values inside the declared classes, images and labels paired by
stem, no file left over that the dataset does not use, and (for msaug's own output) every
file matching the sha256 in its manifest. Problems are collected, not raised one at a
time, so a user sees all of them at once; a problem makes the check fail. Warnings (a
lossy label format, a file the loader ignores) are listed too but do not fail it.

What cannot be verified at all (no such path, an option that does not apply, a folder
of no known layout) is a :class:`~msaug.errors.MsaugError`; the messages name the CLI
options (``--size``, ``--option``, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from msaug.checks import VerifyReport
from msaug.errors import ConfigError, DataError, MsaugWarning, UnknownNameError, did_you_mean
from msaug.nnunet import verify_nnunet

#: what each layout is called in messages
KINDS = {
    "run": "a run folder",
    "synthetic": "a synthetic folder",
    "nnunet": "an nnU-Net folder",
    "pipeline": "a pipeline YAML (its data block says what to load)",
    "folder": "a plain folder",
    "datalist": "a MONAI/Decathlon datalist JSON",
    "dataset": "a registered dataset",
}
#: the options of ``msaug data verify``, the layouts each applies to, and the DataConfig field each sets
OPTIONS = {
    "--root": (("dataset",), "root"),
    "--size": (("dataset", "folder", "datalist"), "size"),
    "--option": (("dataset", "datalist"), "options"),
    "--classes": (("folder", "datalist"), "classes"),
    "--encoding": (("folder", "datalist"), "encoding"),
    "--channels": (("folder", "datalist"), "channels"),
}
TARGETS = (
    "TARGET is a run folder, a synthetic/ folder, an nnU-Net raw dataset folder, a pipeline YAML, a MONAI datalist JSON, "
    "a plain images/+labels/ folder (with --classes) or a registered dataset name (msaug datasets list)"
)


@contextlib.contextmanager
def _collected_warnings(report: VerifyReport) -> Iterator[None]:
    """msaug's warnings (lossy label formats, ...) raised while loading become report warnings; others pass on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MsaugWarning)
        yield
    for w in caught:
        if issubclass(w.category, MsaugWarning):
            report.warn(str(w.message))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


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


def _check_samples(dataset: Any, report: VerifyReport, load: Callable[[int], Any] | None = None) -> None:
    """Load every sample (as training would, or with ``load``) and check its arrays; each item counts, readable or not."""
    spec = dataset.spec
    ids = getattr(dataset, "ids", None)
    for i in range(len(dataset)):
        report.checked += 1
        sample = report.attempt(load or dataset.__getitem__, i)
        if sample is not None:
            where = f"sample {i} ({ids[i] if ids is not None else sample.id})"
            report.problems += _check_sample_arrays(sample, spec.encoding, len(spec.classes), where)


def verify_dataset(config: Any, target: str, kind: str = "dataset") -> VerifyReport:
    """Build the dataset ``config`` names, load every sample and check it; each failure becomes one problem line."""
    from msaug.data import load_dataset

    report = VerifyReport(target, kind)
    with _collected_warnings(report):
        _check_samples(load_dataset(config), report)
    return report


def _listing(folder: Path, report: VerifyReport, ignored: str) -> dict[str, Path]:
    """The image files of ``folder`` by stem; a second file of a stem is a problem, anything else a warning.

    ``ignored`` ends the warning for a file that is no image (``"the folder dataset ignores it"``).
    Hidden files (temporary files of a running writer, ``.DS_Store``) are left alone.
    """
    from msaug.builtin.datasets import IMAGE_SUFFIXES

    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES:
            report.warn(f"{path}: {'a folder' if path.is_dir() else 'not an image file'}; {ignored}")
        elif path.stem in files:
            report.problems.append(f"{path}: a second file with the stem {path.stem!r} ({files[path.stem].name}); stems must be unique")
        else:
            files[path.stem] = path
    return files


def verify_folder(config: Any, target: str, resized: bool = True) -> VerifyReport:
    """A folder dataset (``images/`` + ``labels/``), file by file, then every sample loaded as training would.

    ``resized=False`` loads each sample at its own size instead of ``config.size`` (no
    size was asked for: the files are checked, not a pipeline's view of them).

    Reported: images without a label and labels without an image, a stem used twice,
    unreadable files, label values outside the declared classes, image/label size mismatches;
    files that are no images and lossy label formats are warnings.
    """
    from msaug.builtin.datasets import FolderDataset, scan_image, scan_label
    from msaug.data import load_dataset
    from msaug.label_values import LabelValues, lossy_label_message

    report = VerifyReport(target, "folder dataset")
    values = LabelValues.from_config(config.classes, config.encoding or "index", config.label_values)
    root = Path(config.root)
    label_dir, image_dir = root / "labels", root / "images"
    if not label_dir.is_dir():
        raise DataError(f"{root}: no labels/ folder; the folder dataset expects {root}/labels (and {root}/images)")
    ignored = "the folder dataset ignores it"
    labels = _listing(label_dir, report, ignored)
    images = _listing(image_dir, report, ignored) if image_dir.is_dir() else None
    if not labels:
        raise DataError(f"{label_dir}: no label files")
    report.warn(lossy_label_message(labels.values()))
    for stem in sorted(set(images or ()) - set(labels)):
        report.problems.append(f"{images[stem]}: image without a label (no labels/{stem}.*)")  # type: ignore[index]
    stems = sorted(labels)[: config.count] if config.count else sorted(labels)
    for stem in stems:
        report.checked += 1
        label_path = labels[stem]
        scan = report.attempt(scan_label, label_path, values.colours)
        if scan is not None:
            report.attempt(values.check, scan.values, scan.kind, str(label_path))
        if images is None:
            continue
        if stem not in images:
            report.problems.append(f"{label_path}: label without an image (no images/{stem}.*)")
            continue
        image_hw = report.attempt(scan_image, images[stem])
        if scan is not None and image_hw is not None:
            report.attempt(FolderDataset._same_size, images[stem], image_hw, label_path, scan.shape)
    if report.ok:  # every file is sound: now load each sample as a pipeline would
        checked = report.checked
        with _collected_warnings(report):
            dataset = load_dataset(config)
            _check_samples(dataset, report, None if resized else dataset.native)
        report.checked = checked
    return report


# --- synthetic folders --------------------------------------------------------------------------


def _synthetic_description(root: Path) -> tuple[list[str], str, int]:
    """``(classes, encoding, channels)`` from a synthetic folder's dataset.json."""
    from msaug.io import read_json
    from msaug.synthetic import DESCRIPTION

    path = root / DESCRIPTION
    description = read_json(path)
    try:
        classes, encoding, channels = list(description["classes"]), str(description["encoding"]), int(description["channels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: missing or invalid field ({exc}); msaug's synthetic dataset.json holds classes, encoding and channels") from None
    if encoding not in ("index", "multilabel") or not classes:
        raise DataError(f"{path}: encoding {encoding!r} with classes {classes}: expected index or multilabel and at least one class")
    return classes, encoding, channels


def _manifest_entry(line: str) -> dict[str, Any]:
    """One manifest line as an entry; a ValueError saying what is wrong with it."""
    entry = json.loads(line)
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in ("index", "image", "label") if key not in entry]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    index = entry["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError(f"index {index!r} is not a pair number")
    if not (isinstance(entry["image"], str) and isinstance(entry["label"], str)):
        raise ValueError("image and label must be paths")
    return entry


def _manifest_lines(path: Path, report: VerifyReport) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, entry)`` for each valid line of a manifest; each other line is one problem (and one item)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the manifest ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        report.checked += 1
        where = f"{path}:{number}"
        try:
            yield where, _manifest_entry(line)
        except ValueError as exc:
            report.problems.append(f"{where}: not a valid manifest line ({exc})")


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` normalised, or None when it points outside ``root``."""
    path = Path(os.path.normpath(root / relative))
    return path if path.resolve().is_relative_to(root.resolve()) else None


def verify_synthetic(root: Path) -> VerifyReport:
    """A synthetic folder: every manifest line, every listed file (sha256, contents), and no file left unlisted."""
    from msaug.io import read_image, read_label_array, sha256_file
    from msaug.sample import Sample
    from msaug.label_encoding import from_file
    from msaug.synthetic import DESCRIPTION, MANIFEST, SHARD_MANIFESTS

    report = VerifyReport(str(root), "synthetic dataset")
    classes, encoding, channels = _synthetic_description(root)
    manifests = [root / MANIFEST, *sorted(root.glob(SHARD_MANIFESTS))]
    if not manifests[0].is_file():
        raise DataError(f"{manifests[0]}: manifest not found; is {root} a synthetic dataset folder?")

    def read_pair(image: Path, label: Path, index: int) -> Sample:
        array = read_label_array(label)
        return Sample(f"synthetic-{index:06d}", read_image(image, channels=channels), from_file(array, len(classes), encoding, str(label)).numpy())

    listed: set[Path] = set()
    first_seen: dict[int, str] = {}
    for manifest in manifests:
        if manifest.name != MANIFEST:
            report.problems.append(f"{manifest}: generation is not finished: this shard's pairs are not merged into {MANIFEST} (finish every shard)")
        for where, entry in _manifest_lines(manifest, report):
            index = entry["index"]
            if index in first_seen:
                report.problems.append(f"{where}: pair {index} is listed twice (first at {first_seen[index]})")
            first_seen.setdefault(index, where)
            files: dict[str, Path] = {}
            for key in ("image", "label"):
                path = _inside(root, entry[key])
                if path is None:
                    report.problems.append(f"{where}: {key} path {entry[key]!r} is outside {root}")
                elif not path.is_file():
                    report.problems.append(f"{path}: listed in {where} but missing")
                    listed.add(path)
                else:
                    listed.add(path)
                    files[key] = path
                    if sha256_file(path) != (entry.get("sha256") or {}).get(key):
                        report.problems.append(f"{path}: sha256 does not match {manifest.name}")
            if len(files) == 2:
                sample = report.attempt(read_pair, files["image"], files["label"], index)
                if sample is not None:
                    report.problems += _check_sample_arrays(sample, encoding, len(classes), f"{where} (pair {index})")
    for folder in ("images", "labels"):
        if not (root / folder).is_dir():
            continue
        for path in _listing(root / folder, report, "not part of the synthetic dataset").values():
            if path not in listed:
                report.problems.append(f"{path}: not listed in {MANIFEST} (an orphan pair file)")
    known = {DESCRIPTION, MANIFEST, "images", "labels"}
    for path in sorted(root.iterdir()):
        if path.name not in known and not path.name.startswith(".") and path not in manifests:
            report.warn(f"{path}: not part of the synthetic dataset")
    return report


def verify_run(root: Path) -> VerifyReport:
    """A run folder: its synthetic pairs (when it has them) and every finished stage's weights against its stage.json."""
    from msaug.io import read_json
    from msaug.pipeline.runfolder import RunFolder
    from msaug.synthetic import DESCRIPTION

    run = RunFolder(root)
    report = verify_synthetic(run.synthetic) if (run.synthetic / DESCRIPTION).is_file() else VerifyReport(str(root), "run")
    report.kind, report.target = "run folder", str(root)
    for stage in run.stage_folders():
        report.checked += 1
        info = report.attempt(read_json, stage.info_file)
        if info is None:
            continue
        if info.get("complete") and stage.weights_problem(info) is not None:
            report.problems.append(f"{stage.weights}: missing or sha256 does not match stage.json")
    return report


# --- nnU-Net raw datasets -----------------------------------------------------------------------


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a dict; each value is read as YAML (numbers, booleans, lists)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option annotator=2 (msaug datasets list names each dataset's options)")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = raw
    return options


def _data_config(**fields: Any) -> Any:
    """The :class:`~msaug.data.DataConfig` for the given fields; an invalid value is a ConfigError naming its option."""
    from pydantic import ValidationError

    from msaug.data import DataConfig

    try:
        return DataConfig(**fields)
    except ValidationError as exc:
        raise ConfigError("; ".join(_option_problem(err) for err in exc.errors())) from None


def _option_problem(err: Any) -> str:
    from msaug.data import DataConfig

    name = str(err["loc"][0]) if err["loc"] else ""
    option = next((o for o, (_, f) in OPTIONS.items() if f == name), name)
    meta = DataConfig.model_fields[name].metadata if name in DataConfig.model_fields else []
    low = next((m.ge for m in meta if hasattr(m, "ge")), None)
    high = next((m.le for m in meta if hasattr(m, "le")), None)
    valid = f" (valid: {low}..{high})" if low is not None and high is not None else ""
    bound = {"greater_than_equal": f"must be at least {low}", "less_than_equal": f"must be at most {high}"}.get(err["type"], err["msg"])
    return f"{option} {err.get('input')!r}: {bound}{valid}"


def target_kind(target: str) -> str:
    """Which layout ``target`` is: run, nnunet, synthetic, pipeline, folder or dataset; a MsaugError when none."""
    from msaug.pipeline.runfolder import RunFolder
    from msaug.plugins import get_registries

    path = Path(target).expanduser()
    if path.is_dir():
        if RunFolder(path).resolved.is_file():
            return "run"
        if (path / "imagesTr").is_dir() or (path / "labelsTr").is_dir():
            return "nnunet"
        if (path / "dataset.json").is_file():
            return "synthetic"
        if (path / "labels").is_dir():
            return "folder"
        raise DataError(
            f"{path}: no layout msaug knows: no pipeline.resolved.yaml (a run folder), dataset.json (a synthetic folder), "
            "imagesTr/ or labelsTr/ (nnU-Net) or labels/ (a plain folder)"
        )
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return "pipeline"
        if path.suffix.lower() == ".json":
            return "datalist"
        raise DataError(f"{path}: a file, but not a pipeline YAML (.yaml, .yml) or a datalist (.json); {TARGETS}")
    names = get_registries().datasets
    if target in names:
        return "dataset"
    if os.sep in target or "/" in target or target.startswith((".", "~")) or path.suffix.lower() in (".yaml", ".yml"):
        raise DataError(f"{target}: no such file or folder")
    raise UnknownNameError(f"{target!r} is neither a file or folder nor a registered dataset name.{did_you_mean(target, names)}")


def verify_target(target: str, root: str | None = None, size: int | None = None, options: dict[str, Any] | None = None,
                  classes: list[str] | None = None, encoding: str | None = None, channels: int | None = None) -> VerifyReport:
    """Verify a run folder, a synthetic folder, an nnU-Net folder, a pipeline YAML's data, a plain folder or a registered dataset."""
    kind = target_kind(target)
    given = {"--root": root, "--size": size, "--option": options or None, "--classes": classes, "--encoding": encoding, "--channels": channels}
    for option, value in given.items():
        if value is not None and kind not in OPTIONS[option][0]:
            applies = " or ".join(KINDS[k] for k in OPTIONS[option][0])
            raise ConfigError(f"{option} does not apply to {KINDS[kind]} ({target}); it is for {applies}")
    path = Path(target).expanduser()
    if kind == "run":
        return verify_run(path)
    if kind == "nnunet":
        return verify_nnunet(path)
    if kind == "synthetic":
        return verify_synthetic(path)
    if kind == "pipeline":
        from msaug.pipeline.config import load_pipeline

        data = load_pipeline(path, profile="none").config.data
        if data.dataset == "folder":
            return verify_folder(data, f"{target} (data: {data.root})")
        return verify_dataset(data, f"{target} (data: {data.dataset})")
    if kind == "datalist":
        config = _data_config(dataset="datalist", root=path, size=256 if size is None else size, options=options or {},
                              classes=[c.strip() for c in classes] if classes else None, encoding=encoding, channels=channels)
        return verify_dataset(config, str(path), "datalist dataset")
    if kind == "folder":
        if not classes or any(not c.strip() for c in classes):
            raise ConfigError(f"{target}: a plain folder needs --classes with one name per class, e.g. --classes background,lesion (and --encoding for multilabel)")
        config = _data_config(dataset="folder", root=path, size=256 if size is None else size, classes=[c.strip() for c in classes],
                              encoding=encoding, channels=channels)
        return verify_folder(config, str(path), resized=size is not None)
    if target == "folder":
        raise ConfigError("the folder dataset is verified by its path: msaug data verify DIR --classes background,... (DIR holds labels/ and images/)")
    config = _data_config(dataset=target, root=Path(root).expanduser() if root else None, size=256 if size is None else size, options=options or {})
    return verify_dataset(config, target)
