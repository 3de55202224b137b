"""Datasets in the layouts nnU-Net and MONAI users already have: ``nnunet`` and ``datalist``.

* ``nnunet``: an nnU-Net v2 raw dataset folder (``DatasetNNN_NAME``): ``dataset.json`` with
  ``channel_names``, ``labels``, ``numTraining`` and ``file_ending``; ``imagesTr/{case}_{XXXX}{ending}``
  (one file per channel; an RGB PNG ``_0000`` holds channels R, G, B, as nnU-Net's natural-image
  datasets do) and ``labelsTr/{case}{ending}``. Plain labels (name -> value) are classes in
  the order of their values (``index`` encoding); region-based labels (name -> list of values)
  are overlapping channels, one per region (``multilabel``), so a dataset that
  ``msaug export nnunet`` wrote reads back exactly.
* ``datalist``: a MONAI / Medical Segmentation Decathlon datalist JSON
  (``{"training": [{"image": ..., "label": ...}]}``, paths relative to the JSON's folder or
  ``data.options.base_dir``). Classes come from ``data.classes`` (with ``data.encoding`` /
  ``data.label_values`` as for the folder dataset), else from the datalist's ``classes`` and
  ``encoding`` (what ``msaug export monai`` records: the export reads back losslessly), else
  from its Decathlon ``labels`` (``{"0": "background", "1": "liver"}``).

Images and labels are PNG (any 2-D format Pillow reads) or 2-D NIfTI (``.nii.gz``, ``.nii``,
with the optional ``nibabel``: ``pip install msaug[nifti]``). A NIfTI slice is read as
ITK/SimpleITK does (rows along the second voxel axis), so a PNG converted with SimpleITK
keeps its orientation; its pixel spacing (mm, row then column) goes into
``sample.meta["spacing_mm"]``. NIfTI intensities are scaled to [0, 1] by their integer range
(8 or 16 bit), by ``data.options.intensity: [low, high]`` when given (CT windows: values
clipped), else per image from its minimum to its maximum.

Every case is read by ``check()`` (so ``msaug pipeline check`` fails before any training on a
missing label file, an undeclared label value or an image of another size than its label).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from msaug.builtin.datasets import IMAGE_SUFFIXES, square_sample
from msaug.data import DataConfig
from msaug.errors import ConfigError, DataError
from msaug.hookspecs import hookimpl
from msaug.io import read_image, read_json, read_label_raw
from msaug.label_values import LabelValues, stored_values, warn_lossy_labels
from msaug.plugins import DatasetRegistry
from msaug.resize import SquareFit
from msaug.sample import DataSpec, Sample

NIFTI_ENDINGS = (".nii.gz", ".nii")
#: the file endings the nnunet and datalist datasets read
READABLE_ENDINGS = (*IMAGE_SUFFIXES, *NIFTI_ENDINGS)
NIFTI_INSTALL = "pip install msaug[nifti]"
NNUNET_IMAGE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
#: the fields nnU-Net v2 requires in a raw dataset's dataset.json
NNUNET_FIELDS = ("channel_names", "labels", "numTraining", "file_ending")


# --- reading 2-D files: PNG (Pillow) and NIfTI (nibabel) -------------------------------------------


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_ENDINGS)


def require_nibabel(where: str | Path) -> Any:
    """The nibabel module; a ConfigError naming ``where`` (a NIfTI file, or what asks for NIfTI) when it is not installed."""
    try:
        import nibabel
    except ImportError:
        raise ConfigError(f"{where}: NIfTI files need nibabel, which is not installed: {NIFTI_INSTALL}") from None
    return nibabel


def read_nifti(path: str | Path) -> tuple[np.ndarray, tuple[float, float]]:
    """A 2-D NIfTI file as ``[H, W]`` voxels (rows along the second voxel axis, as ITK reads it) and its spacing (row, column) in mm.

    A single slice (``X x Y`` or ``X x Y x 1``) is what msaug reads; a volume is a DataError.
    """
    path = Path(path)
    nib = require_nibabel(path)
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, gzip errors ... on a broken file
        raise DataError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from None
    shape = data.shape
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 2:
        raise DataError(f"{path}: a {len(shape)}-D NIfTI of shape {shape}; msaug reads 2-D images only (X x Y, or X x Y x 1)")
    spacing = (zooms[1], zooms[0]) if len(zooms) >= 2 else (1.0, 1.0)
    return np.ascontiguousarray(data.T), spacing


def _scale(data: np.ndarray, intensity: tuple[float, float] | None, path: Path) -> np.ndarray:
    """NIfTI voxels to [0, 1]: ``intensity`` (low, high) clipped, else the integer range, else the image's own range."""
    values = data.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: the image holds NaN or infinite values")
    if intensity is not None:
        low, high = intensity
        return np.clip((values - low) / (high - low), 0.0, 1.0)
    if data.dtype == np.uint8:
        return values / 255.0
    if data.dtype == np.uint16:
        return values / 65535.0
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else values * 0.0


def read_case_image(path: Path, intensity: tuple[float, float] | None = None) -> tuple[np.ndarray, tuple[float, float] | None]:
    """An image file as float32 ``[C, H, W]`` in [0, 1] and its spacing (NIfTI; None for PNG)."""
    if is_nifti(path):
        data, spacing = read_nifti(path)
        return _scale(data, intensity, path)[None].astype(np.float32), spacing
    return read_image(path), None


def read_case_label(path: Path, colours: bool = False) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """A label file as integer stored values ``[H, W]``, their kind (``grey``/``colour``) and spacing (NIfTI only)."""
    if is_nifti(path):
        data, spacing = read_nifti(path)
        if data.dtype.kind == "f":
            if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
                raise DataError(f"{path}: label values must be whole numbers (class values), found fractions or NaN")
        elif data.dtype.kind not in "uib":
            raise DataError(f"{path}: label voxels of type {data.dtype} are not class values")
        if data.size and data.min() < 0:
            raise DataError(f"{path}: label value {int(data.min())} is negative; label values are 0 (background) and up")
        return data.astype(np.int64), "grey", spacing
    values, kind = stored_values(read_label_raw(path, colours), colours)
    return values, kind, None


def ending_of(path: str | Path, endings: Iterable[str] = READABLE_ENDINGS) -> str | None:
    """The file ending of ``path`` among ``endings`` (``.nii.gz`` before ``.gz``), case-insensitive; None when none."""
    name = str(path).lower()
    return next((e for e in sorted(endings, key=len, reverse=True) if name.endswith(e)), None)


# --- label values declared by the dataset's own description ----------------------------------------


@dataclass(frozen=True)
class DeclaredLabels:
    """The label values a dataset's own description declares, and the channels each one turns on.

    nnU-Net's ``labels`` (name -> value: one class per value; name -> list of values: a region,
    so a value may turn on several overlapping channels) or a Decathlon datalist's ``labels``
    (value -> name). The same interface as :class:`~msaug.label_values.LabelValues`
    (``check``, ``to_label``), with messages naming ``source``.
    """

    classes: tuple[str, ...]
    encoding: str
    channels_of: tuple[tuple[int, tuple[int, ...]], ...]  # stored value -> channels it turns on, by value
    source: str
    colours: bool = False

    @classmethod
    def from_nnunet(cls, labels: Any, where: str) -> DeclaredLabels:
        """From a dataset.json ``labels``: ``{"background": 0, "liver": 1}`` or regions ``{"background": 0, "lung": [1, 3]}``."""
        source = f"{where}'s labels"
        if isinstance(labels, dict) and labels and all(str(k).isdigit() and isinstance(v, str) for k, v in labels.items()):
            labels = {name: int(value) for value, name in labels.items()}  # nnU-Net v1: {"0": "background", ...}
        if not isinstance(labels, dict) or not labels:
            raise DataError(f"{where}: labels must map class names to values, e.g. {{\"background\": 0, \"liver\": 1}}")
        for name, value in labels.items():
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items):
                raise DataError(f"{where}: labels[{name!r}] = {value!r} is not a label value (an integer, or a list of them for a region)")
        if labels.get("background") != 0:
            raise DataError(f"{where}: labels must declare background as 0, e.g. {{\"background\": 0, ...}}; got {labels!r}")
        if not any(isinstance(v, list) for v in labels.values()):
            by_value: dict[int, str] = {}
            for name, value in labels.items():
                if value in by_value:
                    raise DataError(f"{where}: labels {by_value[value]!r} and {name!r} share the value {value}; each class needs its own")
                by_value[value] = name
            order = sorted(by_value)
            return cls(tuple(by_value[v] for v in order), "index", tuple((v, (k,)) for k, v in enumerate(order)), source)
        regions = [(name, set(v if isinstance(v, list) else [v])) for name, v in labels.items() if name != "background"]
        if not regions:
            raise DataError(f"{where}: region-based labels declare no region besides background")
        if len(regions) > 62:
            raise DataError(f"{where}: {len(regions)} regions; msaug reads at most 62 overlapping channels")
        values = sorted({0}.union(*(r for _, r in regions)))
        table = tuple((v, tuple(k for k, (_, r) in enumerate(regions) if v in r)) for v in values)
        return cls(tuple(name for name, _ in regions), "multilabel", table, source)

    @classmethod
    def from_datalist(cls, labels: Any, where: str) -> DeclaredLabels:
        """From a Decathlon datalist's ``labels``: ``{"0": "background", "1": "liver"}`` (value -> class name)."""
        if not isinstance(labels, dict) or not labels or not all(str(k).strip().isdigit() and isinstance(v, str) for k, v in labels.items()):
            raise DataError(f"{where}: labels must map label values to class names, e.g. {{\"0\": \"background\", \"1\": \"liver\"}}; got {labels!r}")
        order = sorted(int(k) for k in labels)
        names = {int(k): v for k, v in labels.items()}
        return cls(tuple(names[v] for v in order), "index", tuple((v, (k,)) for k, v in enumerate(order)), f"{where}'s labels")

    def valid(self) -> str:
        """The declared values and what each means, as messages show them."""
        def meaning(channels: tuple[int, ...]) -> str:
            return "+".join(self.classes[c] for c in channels) or "background"

        shown = [f"{v} ({meaning(c)})" for v, c in self.channels_of[:12]]
        return ", ".join(shown) + (f" ... ({len(self.channels_of)} values)" if len(self.channels_of) > 12 else "")

    def check(self, values: Iterable[int], kind: str, where: str) -> None:
        """Raise :class:`DataError` naming ``where``, the undeclared values and the declared ones."""
        if kind == "colour":
            raise DataError(f"{where}: an RGB label map; {self.source} declare grey label values: {self.valid()}")
        known = {v for v, _ in self.channels_of}
        bad = sorted(int(v) for v in values if int(v) not in known)
        if bad:
            shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
            said = f"label value {shown} is" if len(bad) == 1 else f"label values {shown} are"
            raise DataError(f"{where}: {said} not declared in {self.source}; valid values: {self.valid()}")

    def to_label(self, values: np.ndarray, kind: str, where: str) -> np.ndarray:
        """Stored values ``[H, W]`` to float32 label channels ``[K, H, W]``."""
        self.check(np.unique(values).tolist(), kind, where)
        keys = np.array([v for v, _ in self.channels_of], dtype=np.int64)
        masks = np.array([sum(1 << c for c in channels) for _, channels in self.channels_of], dtype=np.int64)
        bits = masks[np.searchsorted(keys, values.astype(np.int64))]
        shifts = np.arange(len(self.classes), dtype=np.int64).reshape(-1, 1, 1)
        return ((bits[None] >> shifts) & 1).astype(np.float32)


# --- what both datasets share: cases of files, read at their own size ------------------------------


@dataclass(frozen=True)
class Case:
    """One case: its id, its image files (one per channel, or one file holding them all) and its label file."""

    id: str
    images: tuple[Path, ...]
    label: Path


def read_options(config: DataConfig, defaults: dict[str, Any]) -> dict[str, Any]:
    """``config.options`` over ``defaults``; an unknown key is a ConfigError naming the valid ones."""
    unknown = sorted(set(config.options) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items())
        raise ConfigError(f"data.options: dataset {config.dataset!r} has no option {', '.join(map(repr, unknown))}; valid: {valid}")
    return {**defaults, **config.options}


def intensity_option(value: Any, where: str) -> tuple[float, float] | None:
    """``[low, high]`` (NIfTI intensity window) or None; anything else is a ConfigError."""
    if value is None:
        return None
    if (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and float(value[1]) > float(value[0])):
        return float(value[0]), float(value[1])
    raise ConfigError(f"{where}: expected [low, high] with low < high (the intensities that become 0 and 1, e.g. [-1000, 400] for a CT lung window), got {value!r}")


class CaseFiles:
    """Cases of image and label files at their own size, fitted to the square as the folder dataset does.

    Subclasses set ``cases``, ``values`` (how label values become channels), ``spec``,
    ``square_fit`` and ``intensity``; ``dataset[i]`` is case *i* padded (or squashed, cropped)
    to a square at ``spec.size``, ``native(i)`` is it on its own grid.
    """

    cases: list[Case]
    values: LabelValues | DeclaredLabels
    spec: DataSpec
    square_fit: SquareFit
    intensity: tuple[float, float] | None = None

    def _setup(self, config: DataConfig, cases: list[Case], values: LabelValues | DeclaredLabels, channels: int) -> None:
        self.cases = cases[: config.count] if config.count else cases
        self.values = values
        self.square_fit = config.square_fit or "pad"
        self.spec = DataSpec(values.classes, values.encoding, channels, config.size, "generic")  # type: ignore[arg-type]
        warn_lossy_labels(c.label for c in self.cases)
        self._load = lru_cache(maxsize=None)(self._read)

    @property
    def ids(self) -> list[str]:
        """Case ids, known without reading a file (grouped splits use them)."""
        return [c.id for c in self.cases]

    @property
    def has_images(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> Sample:
        return self._load(range(len(self.cases))[index])

    def _read(self, index: int) -> Sample:
        return square_sample(self.native(index), self.spec, self.square_fit)

    def check(self) -> None:
        """Read every case (label values, channels, sizes); raise :class:`DataError` on the first problem.

        Each case is read once: the check loads it through the sample cache, so the training
        that follows a check (``pipeline run`` checks first) does not decode the files again.
        """
        for i in range(len(self.cases)):
            self._load(i)

    def native(self, index: int) -> Sample:
        """Case ``index`` at the size of its files: image ``[C, H, W]``, label ``[K, H, W]``, spacing in the meta when known."""
        case = self.cases[index]
        values, kind, label_spacing = read_case_label(case.label, self.values.colours)
        label = self.values.to_label(values, kind, str(case.label))
        parts, spacing = [], None
        for path in case.images:
            image, image_spacing = read_case_image(path, self.intensity)
            if image.shape[1:] != values.shape:
                raise DataError(
                    f"{path}: image is {image.shape[2]}x{image.shape[1]} but its label {case.label.name} is "
                    f"{values.shape[1]}x{values.shape[0]}; they must match"
                )
            parts.append(image)
            spacing = spacing or image_spacing
        image = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if image.shape[0] != self.spec.channels:
            if self.converts_channels and len(case.images) == 1 and {image.shape[0], self.spec.channels} == {1, 3}:
                image = image.mean(axis=0, keepdims=True) if self.spec.channels == 1 else np.repeat(image, 3, axis=0)
            else:
                raise DataError(
                    f"{case.images[0]}: case {case.id!r} has {image.shape[0]} image channel{'s' if image.shape[0] != 1 else ''} "
                    f"in {len(case.images)} file{'s' if len(case.images) != 1 else ''}, but {self.channels_from} declares {self.spec.channels}"
                )
        meta: dict[str, Any] = {
            "label_file": str(case.label), "image_file": str(case.images[0]), "image_files": [str(p) for p in case.images],
            "native_size": (int(values.shape[0]), int(values.shape[1])), "square_fit": self.square_fit,
        }
        if spacing or label_spacing:
            meta["spacing_mm"] = spacing or label_spacing
        return Sample(case.id, np.ascontiguousarray(image, dtype=np.float32), label, None, meta)

    #: what declared the channel count, for messages
    channels_from = "data.channels"
    #: one grey file becomes RGB and one RGB file grey where ``spec.channels`` asks (as the folder dataset's data.channels)
    converts_channels = True


# --- nnU-Net v2 raw datasets ------------------------------------------------------------------------


def nnunet_meta(root: Path) -> tuple[Path, dict[str, Any]]:
    """``(path, contents)`` of an nnU-Net raw dataset's dataset.json, the required fields checked."""
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DataError(
            f"{meta_path}: not found; an nnU-Net v2 raw dataset folder (nnUNet_raw/DatasetNNN_NAME) holds dataset.json "
            f"({', '.join(NNUNET_FIELDS)}), imagesTr/ and labelsTr/"
        )
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise DataError(f"{meta_path}: not a JSON object; nnU-Net's dataset.json holds {', '.join(NNUNET_FIELDS)}")
    if "channel_names" not in meta and "modality" in meta:
        meta = {**meta, "channel_names": meta["modality"]}  # nnU-Net v1's name, which v2 still reads
    missing = [key for key in NNUNET_FIELDS if meta.get(key) is None]
    if missing:
        raise DataError(f"{meta_path}: missing {', '.join(missing)} (nnU-Net v2's dataset.json needs {', '.join(NNUNET_FIELDS)})")
    return meta_path, meta


class NnunetDataset(CaseFiles):
    """An nnU-Net v2 raw dataset folder (``data.root``), its training cases (``imagesTr``, ``labelsTr``); see the module docstring."""

    converts_channels = False  # nnU-Net reads an RGB file as three channels: channel_names must say so

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the nnunet dataset needs the raw dataset folder (nnUNet_raw/DatasetNNN_NAME, holding dataset.json)")
        root = Path(config.root)
        if not root.is_dir():
            raise DataError(f"data.root: folder {root} does not exist")
        options = read_options(config, {"intensity": None})
        self.intensity = intensity_option(options["intensity"], "data.options.intensity")
        meta_path, meta = nnunet_meta(root)
        ending = meta["file_ending"]
        if not isinstance(ending, str) or ending_of(ending) != ending.lower() or not ending.startswith("."):
            raise DataError(f"{meta_path}: file_ending {ending!r}: msaug reads {', '.join(READABLE_ENDINGS)} (2-D images)")
        channel_names = meta["channel_names"]
        if not isinstance(channel_names, dict) or not channel_names or sorted(map(str, channel_names)) != [str(c) for c in range(len(channel_names))]:
            raise DataError(f"{meta_path}: channel_names must map channel numbers from 0 to names, e.g. {{\"0\": \"CT\"}}; got {channel_names!r}")
        values = DeclaredLabels.from_nnunet(meta["labels"], str(meta_path))
        _same_as_declared(config, values, meta_path)
        cases = _nnunet_cases(root, ending, len(channel_names))
        if meta["numTraining"] != len(cases):
            raise DataError(f"{meta_path}: numTraining is {meta['numTraining']!r} but labelsTr holds {len(cases)} cases; set it to {len(cases)}")
        if not cases:
            raise DataError(f"{root / 'labelsTr'}: no {ending} label files")
        self.root = root
        self.channels_from = f"{meta_path}'s channel_names"
        self._setup(config, cases, values, len(channel_names))


def _same_as_declared(config: DataConfig, values: DeclaredLabels, meta_path: Path) -> None:
    """data.classes / encoding / label_values may restate dataset.json's labels, never change them."""
    if config.label_values:
        raise ConfigError(f"data.label_values: the nnunet dataset maps label values by {meta_path}'s labels; remove data.label_values")
    if config.classes is not None and tuple(config.classes) != values.classes:
        raise ConfigError(f"data.classes: {list(config.classes)} differs from {meta_path}'s labels, which give {list(values.classes)}; remove data.classes")
    if config.encoding is not None and config.encoding != values.encoding:
        raise ConfigError(f"data.encoding: {config.encoding!r}, but {meta_path}'s labels are {values.encoding} "
                          f"({'regions: overlapping channels' if values.encoding == 'multilabel' else 'one class per value'}); remove data.encoding")


def _nnunet_cases(root: Path, ending: str, channels: int) -> list[Case]:
    """The cases of ``imagesTr``/``labelsTr``; an image without a label or a label missing a channel's image is a DataError."""
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; an nnU-Net raw dataset keeps its training cases in imagesTr/ and labelsTr/")
    low = ending.lower()

    def files(folder: Path) -> list[Path]:
        return [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(low)]

    labels = {p.name[: -len(ending)]: p for p in files(labels_dir)}
    images: dict[str, dict[int, Path]] = {}
    for path in files(images_dir):
        m = NNUNET_IMAGE.match(path.name[: -len(ending)])
        if m is None:
            raise DataError(f"{path}: not named CASE_XXXX{ending} (XXXX: the channel, 0000 for the first), as nnU-Net names images")
        images.setdefault(m["case"], {})[int(m["channel"])] = path
    for case in sorted(images):
        if case not in labels:
            raise DataError(f"{images[case][min(images[case])]}: image without a label: no {labels_dir / (case + ending)}")
    cases = []
    for case, label in sorted(labels.items()):
        found = images.get(case, {})
        # one RGB PNG holds channels R, G, B (nnU-Net's natural-image datasets); reading checks it is RGB
        wanted = [0] if channels == 3 and sorted(found) == [0] and low in IMAGE_SUFFIXES else list(range(channels))
        for c in wanted:
            if c not in found:
                raise DataError(f"{images_dir / f'{case}_{c:04d}{ending}'}: missing ({label} needs {channels} channel{'s' if channels > 1 else ''}, one file each)")
        extra = sorted(set(found) - set(wanted))
        if extra:
            raise DataError(f"{found[extra[0]]}: channel {extra[0]} is not in dataset.json's channel_names ({channels} channel{'s' if channels > 1 else ''})")
        cases.append(Case(case, tuple(found[c] for c in wanted), label))
    return cases


# --- MONAI / Decathlon datalists -------------------------------------------------------------------

DATALIST_NAMES = ("dataset.json", "datalist.json")


class DatalistDataset(CaseFiles):
    """A MONAI / Decathlon datalist JSON (``data.root``: the file, or a folder holding dataset.json); see the module docstring."""

    def __init__(self, config: DataConfig):
        if config.root is None:
            raise ConfigError("data.root: the datalist dataset needs the datalist JSON file (or a Decathlon task folder holding dataset.json)")
        path = Path(config.root)
        if path.is_dir():
            found = [path / n for n in DATALIST_NAMES if (path / n).is_file()]
            if not found:
                raise DataError(f"{path}: a folder without {' or '.join(DATALIST_NAMES)}; name the datalist JSON file in data.root")
            path = found[0]
        elif not path.is_file():
            raise DataError(f"data.root: {path}: no such datalist file")
        options = read_options(config, {"key": "training", "base_dir": None, "intensity": None})
        meta = read_json(path)
        if not isinstance(meta, dict):
            raise DataError(f"{path}: not a datalist (a JSON object with a \"training\" list of {{\"image\", \"label\"}})")
        key = str(options["key"])
        items = meta.get(key)
        if not isinstance(items, list) or not items:
            lists = [k for k, v in meta.items() if isinstance(v, list) and v and all(isinstance(i, dict) for i in v)]
            raise DataError(f"{path}: no {key!r} list of {{\"image\", \"label\"}} items" + (f"; lists there: {', '.join(lists)} (data.options.key)" if lists else ""))
        base = Path(options["base_dir"]).expanduser() if options["base_dir"] else path.parent
        if not base.is_absolute() and options["base_dir"]:
            base = path.parent / base
        if options["intensity"] is not None:
            self.intensity = intensity_option(options["intensity"], "data.options.intensity")
        else:
            self.intensity = intensity_option(_nifti_range(meta), f"{path}: intensity_range")
        self.datalist = path
        values = _datalist_values(config, meta, path)
        cases = _datalist_cases(items, key, base, path)
        channels = config.channels or _int(meta.get("channels")) or max(len(c.images) for c in cases)
        self.channels_from = "data.channels" if config.channels else f"{path} (its channels)" if _int(meta.get("channels")) else f"{path} (its image files)"
        self._setup(config, cases, values, channels)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _nifti_range(meta: dict[str, Any]) -> list[float] | None:
    """The datalist's recorded ``intensity_range`` (msaug's exports): the window for NIfTI images; PNGs scale by their bit depth."""
    value = meta.get("intensity_range")
    return value if isinstance(value, list) and len(value) == 2 else None


def _datalist_values(config: DataConfig, meta: dict[str, Any], path: Path) -> LabelValues | DeclaredLabels:
    """How label values become channels: data.classes (and label_values), else the datalist's classes/encoding, else its labels."""
    if config.classes or config.label_values:
        return LabelValues.from_config(config.classes, config.encoding or "index", config.label_values)
    if "classes" in meta and "encoding" in meta:  # what msaug export monai records
        classes, encoding = meta["classes"], meta["encoding"]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes) or encoding not in ("index", "multilabel"):
            raise DataError(f"{path}: classes {classes!r} / encoding {encoding!r}: expected a list of class names and index or multilabel")
        if config.encoding is not None and config.encoding != encoding:
            raise ConfigError(f"data.encoding: {config.encoding!r}, but {path} records encoding {encoding!r}; remove data.encoding")
        return LabelValues.from_config(classes, encoding, None)
    if "labels" in meta:
        if config.encoding == "multilabel":
            raise ConfigError(f"data.encoding: multilabel needs data.classes (one name per bit); {path}'s labels name one class per value")
        return DeclaredLabels.from_datalist(meta["labels"], str(path))
    raise ConfigError(
        f"data.classes: {path} has no labels (value -> class name) to take the classes from; name them, "
        "e.g. classes: [background, liver] (and data.label_values for 0/255 masks)"
    )


def _datalist_cases(items: list[Any], key: str, base: Path, path: Path) -> list[Case]:
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"{path}: {key}[{i}]"
        if not isinstance(item, dict) or "image" not in item or "label" not in item:
            raise DataError(f"{where}: every item needs \"image\" and \"label\" (a labelled pair), got {item!r}"[:300])
        images = item["image"] if isinstance(item["image"], list) else [item["image"]]
        if not images or not all(isinstance(p, str) for p in [*images, item["label"]]):
            raise DataError(f"{where}: image and label must be file paths (image: one path, or a list of one per channel)")
        files = []
        for name, text in [*(("image", p) for p in images), ("label", item["label"])]:
            file = Path(text).expanduser()
            file = file if file.is_absolute() else base / file
            if ending_of(file) is None:
                raise DataError(f"{where}.{name}: {file}: msaug reads {', '.join(READABLE_ENDINGS)} files")
            if not file.is_file():
                raise DataError(f"{where}.{name}: {file} not found (paths are relative to {base})")
            files.append(file)
        label = files[-1]
        case_id = label.name[: -len(ending_of(label) or "")]
        if case_id in seen:
            case_id = f"{i:05d}_{case_id}"
        seen[case_id] = i
        cases.append(Case(case_id, tuple(files[:-1]), label))
    return cases


@hookimpl
def msaug_register_datasets(register: DatasetRegistry) -> None:
    register(
        "nnunet",
        NnunetDataset,
        description="an nnU-Net v2 raw dataset folder (dataset.json, imagesTr/, labelsTr/; PNG or 2-D NIfTI): classes from its "
        "labels, regions as overlapping channels; options: intensity (low, high) for NIfTI",
    )
    register(
        "datalist",
        DatalistDataset,
        description="a MONAI/Decathlon datalist JSON ({training: [{image, label}]}; PNG or 2-D NIfTI), msaug export monai's "
        "included; classes from data.classes or the datalist; options: key, base_dir, intensity",
    )
