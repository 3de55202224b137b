"""How the pixel values of label files map to classes.

Real masks come in many conventions: class indices (0, 1, 2, ...), binary masks saved as
0/255 (the usual export of annotation tools), palette images, RGB masks with one colour per
class. A :class:`LabelValues` says which stored values are valid and which class each one
means, so a dataset can check every file before any training and decode it the same way
when it loads it.

* ``index`` encoding, no map given: values are class indices ``0..K-1``; two-class data
  also accept 255 for the second class (0/255 masks need no configuration).
* ``index`` encoding, a map given (``data.label_values``): ``{0: background, 255: lung}``
  maps grey (or palette-index) values, ``{"#ff0000": lesion, "#000000": background}`` maps
  colours (every file is then read as RGB, palette files by their colours).
* ``multilabel`` encoding: values are bit masks, bit *k* set where channel *k* is on.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from msaug.errors import ConfigError, DataError, MsaugWarning

_COLOUR = re.compile(r"#([0-9a-fA-F]{6})")
#: the largest grey value a label file can hold (16-bit PNG/TIFF)
MAX_VALUE = 65535


def parse_key(key: Any) -> tuple[int, bool]:
    """A ``data.label_values`` key as ``(value, is_colour)``: an int 0..65535, or ``"#rrggbb"`` packed as 0xRRGGBB."""
    if isinstance(key, bool):
        raise ConfigError(f"data.label_values: key {key!r} is neither a pixel value (0..{MAX_VALUE}) nor a colour '#rrggbb'")
    if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
        value = int(key)
        if not 0 <= value <= MAX_VALUE:
            raise ConfigError(f"data.label_values: pixel value {value} is outside 0..{MAX_VALUE}")
        return value, False
    if isinstance(key, str) and _COLOUR.fullmatch(key.strip()):
        return int(key.strip()[1:], 16), True
    raise ConfigError(f"data.label_values: key {key!r} is neither a pixel value (0..{MAX_VALUE}) nor a colour '#rrggbb' (quote it in YAML)")


def colour_name(packed: int) -> str:
    return f"#{packed:06x}"


@dataclass(frozen=True)
class LabelValues:
    """The valid values of a dataset's label files and the class each one stands for.

    ``table`` maps stored values (grey values, palette indices, or colours packed as
    0xRRGGBB when ``colours``) to class indices; it is None for ``multilabel`` bit masks.
    """

    classes: tuple[str, ...]
    encoding: str
    table: tuple[tuple[int, int], ...] | None
    colours: bool = False
    configured: bool = False

    @classmethod
    def from_config(cls, classes: list[str] | None, encoding: str, label_values: Mapping[Any, str] | None) -> LabelValues:
        """Build the value map from ``data.classes`` / ``data.encoding`` / ``data.label_values``.

        Class order: ``data.classes`` when given, else the order in which ``label_values``
        first names each class (index encoding: background first).
        """
        if label_values:
            if encoding != "index":
                raise ConfigError("data.label_values: applies to index encoding only; multilabel label files hold bit masks (bit k = channel k)")
            parsed = [(*parse_key(k), str(v)) for k, v in label_values.items()]
            kinds = {is_colour for _, is_colour, _ in parsed}
            if len(kinds) > 1:
                raise ConfigError("data.label_values: mixes pixel values and colours; use either values (0: background) or colours ('#000000': background)")
            names = list(classes) if classes else list(dict.fromkeys(name for _, _, name in parsed))
            unknown = sorted({name for _, _, name in parsed} - set(names))
            if unknown:
                raise ConfigError(f"data.label_values: class {unknown[0]!r} is not in data.classes; valid classes: {', '.join(names)}")
            table = tuple(sorted((value, names.index(name)) for value, _, name in parsed))
            return cls(tuple(names), "index", table, colours=kinds == {True}, configured=True)
        if not classes:
            raise ConfigError(
                "data.classes: the folder dataset needs the class names, e.g. [background, lesion] "
                "(or data.label_values mapping pixel values to them, e.g. {0: background, 255: lesion})"
            )
        if encoding == "multilabel":
            return cls(tuple(classes), "multilabel", None)
        k = len(classes)
        table = ((0, 0), (1, 1), (255, 1)) if k == 2 else tuple((v, v) for v in range(k))
        return cls(tuple(classes), "index", table)

    @property
    def limit(self) -> int:
        """The largest valid bit mask (multilabel)."""
        return (1 << len(self.classes)) - 1

    def valid(self) -> str:
        """The valid values, as an error message shows them."""
        if self.table is None:
            return f"bit masks 0..{self.limit} ({len(self.classes)} channels: {', '.join(self.classes)})"
        if self.colours:
            return "colours " + ", ".join(f"{colour_name(v)} ({self.classes[c]})" for v, c in self.table)
        if self.configured:
            return ", ".join(f"{v} ({self.classes[c]})" for v, c in self.table)
        if len(self.classes) == 2:
            return f"0 ({self.classes[0]}), 1 or 255 ({self.classes[1]})"
        return f"0..{len(self.classes) - 1} (class indices of {', '.join(self.classes)})"

    def _hint(self) -> str:
        return "" if self.configured or self.table is None else "; map other values to classes with data.label_values, e.g. {0: background, 255: lesion}"

    def check(self, values: Iterable[int], kind: str, where: str) -> None:
        """Raise :class:`DataError` naming ``where``, the bad values and the valid ones.

        ``values`` are the distinct stored values of one file; ``kind`` is ``"grey"``
        (one channel or palette indices) or ``"colour"`` (an RGB file, values packed 0xRRGGBB).
        """
        values = sorted(int(v) for v in values)
        if kind == "colour" and not self.colours:
            shown = ", ".join(colour_name(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
            raise DataError(
                f"{where}: an RGB label map with colours {shown}; map each colour to a class with "
                "data.label_values, e.g. {'#000000': background, '#ff0000': lesion}"
            )
        if self.table is None:
            bad = [v for v in values if v < 0 or v > self.limit]
            if bad:
                raise DataError(f"{where}: label value {bad[-1]} is outside the declared classes; valid values: {self.valid()}")
            return
        known = {v for v, _ in self.table}
        bad = [v for v in values if v not in known]
        if not bad:
            return
        shown = ", ".join(colour_name(v) if self.colours else str(v) for v in bad[:5]) + (" ..." if len(bad) > 5 else "")
        what = "colour" if self.colours else "value"
        said = f"label {what} {shown} is" if len(bad) == 1 else f"label {what}s {shown} are"
        if self.configured:
            raise DataError(f"{where}: {said} not in data.label_values; valid {what}s: {self.valid().removeprefix('colours ')}")
        raise DataError(f"{where}: {said} outside the declared classes; valid values: {self.valid()}{self._hint()}")

    def to_label(self, values: np.ndarray, kind: str, where: str) -> np.ndarray:
        """Stored values ``[H, W]`` to float32 label channels ``[K, H, W]`` (see :mod:`msaug.modality`)."""
        present = np.unique(values)
        self.check(present.tolist(), kind, where)
        k = len(self.classes)
        if self.table is None:
            shifts = np.arange(k, dtype=np.int64).reshape(-1, 1, 1)
            return ((values.astype(np.int64)[None] >> shifts) & 1).astype(np.float32)
        keys = np.array([v for v, _ in self.table], dtype=np.int64)
        classes = np.array([c for _, c in self.table], dtype=np.int64)
        index = classes[np.searchsorted(keys, values.astype(np.int64))]
        return (index[None] == np.arange(k, dtype=np.int64).reshape(-1, 1, 1)).astype(np.float32)


def stored_values(raw: np.ndarray, colours: bool) -> tuple[np.ndarray, str]:
    """A label file's array as stored values ``[H, W]`` and their kind (``grey`` or ``colour``).

    ``raw`` is what :func:`msaug.io.read_label_raw` returned: ``[H, W]`` or ``[H, W, 3]``. An
    RGB file whose three channels agree everywhere is grey (saved as RGB by some tools); any
    other RGB file holds colours, packed as 0xRRGGBB.
    """
    if raw.ndim == 2:
        return raw, "grey"
    rgb = raw.astype(np.int64)
    if not colours and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0], "grey"
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], "colour"


def distinct(values: np.ndarray) -> list[int]:
    """The distinct values of an integer array, fast for 8- and 16-bit files (a histogram, no sort)."""
    if values.size and values.dtype.kind in "ub" and values.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(values.ravel().astype(np.int64))).tolist()
    return np.unique(values).tolist()


#: label file formats whose compression changes pixel values
LOSSY_LABEL_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")


class LossyLabelWarning(MsaugWarning):
    """Label maps stored in a lossy format (JPEG): values may have changed without any invalid one showing."""


def lossy_label_message(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """One message naming the label files kept in a lossy format (per folder), or None when there are none.

    JPEG blurs class boundaries and can erase a small class altogether while every stored
    value stays a valid class, so no value check can find the damage: the format itself is
    the warning sign. Every reader of label files (the folder dataset, ``msaug data verify``)
    asks here, so they warn alike.
    """
    by_folder: dict[Path, list[Path]] = {}
    for path in map(Path, paths):
        if path.suffix.lower() in LOSSY_LABEL_SUFFIXES:
            by_folder.setdefault(path.parent, []).append(path)
    if not by_folder:
        return None
    parts = []
    for folder, files in sorted(by_folder.items()):
        names = sorted(p.name for p in files)
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        parts.append(f"{folder}: {len(names)} label map{'s' if len(names) > 1 else ''} stored as JPEG ({shown})")
    return (
        "; ".join(parts) + ". JPEG compression changes pixel values: class boundaries blur and small classes can vanish "
        "while every value stays valid, so no check can see it; save label maps losslessly (PNG, TIFF)"
    )


def warn_lossy_labels(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Issue a :class:`LossyLabelWarning` when any of ``paths`` is in a lossy format (see :func:`lossy_label_message`)."""
    message = lossy_label_message(paths)
    if message:
        warnings.warn(message, LossyLabelWarning, stacklevel=2)
