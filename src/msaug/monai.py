"""MONAI transforms for the datalists ``msaug export monai`` writes.

msaug stores a label map as one integer per pixel: the class index (``encoding: index``) or,
for overlapping structures (``encoding: multilabel``), a bit mask with bit k set where
channel k is on (a lung+clavicle pixel is 1 + 2 = 3). No MONAI transform decodes bit masks
(``AsDiscreted(to_onehot=K)`` treats 3 as a class of its own), so :class:`DecodeLabelsd`
turns either encoding into one float 0/1 channel per class, exactly msaug's own
``[K, H, W]`` label. Images are 8- or 16-bit PNGs whose raw range the datalist records
(``intensity_range``); ``ScaleIntensityRanged`` with that range gives msaug's [0, 1].

:func:`datalist_transforms` builds the whole chain from a datalist's own fields::

    from monai.data import DataLoader, Dataset, load_decathlon_datalist
    from msaug.monai import datalist_transforms

    files = load_decathlon_datalist("datalist.json", data_list_key="training")
    loader = DataLoader(Dataset(files, datalist_transforms("datalist.json")), batch_size=4)
    batch = next(iter(loader))  # batch["image"] [B, C, H, W] in [0, 1], batch["label"] [B, K, H, W]
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import Compose, LoadImaged, MapTransform, ScaleIntensityRanged, Transform
from monai.utils.type_conversion import convert_to_dst_type

from msaug.errors import DataError
from msaug.io import read_json
from msaug.label_encoding import ENCODINGS, from_file


class DecodeLabels(Transform):
    """An msaug label map (``[1, H, W]`` or ``[H, W]`` integers) to ``[K, H, W]`` float 0/1 channels.

    ``classes`` is the class count or the class names (the datalist's ``classes``);
    ``encoding`` is ``index`` (one-hot, like ``AsDiscrete(to_onehot=K)``) or ``multilabel``
    (bit k of each value is channel k). Values that are not whole numbers, or outside the
    declared classes, raise :class:`msaug.DataError` (a label resized with a non-nearest
    interpolation would otherwise decode to nonsense). A ``MetaTensor`` keeps its metadata.
    """

    backend = ["torch", "numpy"]

    def __init__(self, classes: int | Sequence[str], encoding: str = "multilabel"):
        self.classes = classes if isinstance(classes, int) else len(classes)
        if self.classes < 1:
            raise DataError(f"DecodeLabels: classes must be at least 1, got {classes!r}")
        if encoding not in ENCODINGS:
            raise DataError(f"DecodeLabels: unknown encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
        self.encoding = encoding

    def __call__(self, label: Any) -> Any:
        values = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
        if values.ndim == 3 and values.shape[0] == 1:
            values = values[0]
        if values.ndim != 2:
            raise DataError(f"DecodeLabels: expected one label map [1, H, W] or [H, W], got shape {tuple(values.shape)}")
        if values.dtype.kind == "f":
            if not np.array_equal(values, np.round(values)):
                raise DataError("DecodeLabels: label values are not whole numbers; load labels unresized or resize them with mode='nearest'")
        decoded = from_file(values.astype(np.int64), self.classes, self.encoding, "DecodeLabels")
        if not isinstance(label, (torch.Tensor, np.ndarray)):
            return decoded
        return convert_to_dst_type(decoded, label, dtype=torch.float32)[0]  # same type (MetaTensor: same metadata)


class DecodeLabelsd(MapTransform):
    """Dictionary version of :class:`DecodeLabels` (``keys`` default ``"label"``)."""

    backend = DecodeLabels.backend

    def __init__(self, keys: KeysCollection = "label", classes: int | Sequence[str] = 1, encoding: str = "multilabel",
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.decode = DecodeLabels(classes, encoding)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.decode(d[key])
        return d


def read_datalist(datalist: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A datalist written by ``msaug export monai`` (a path or the loaded dict), its msaug fields checked."""
    where = "datalist" if isinstance(datalist, Mapping) else str(datalist)
    meta = dict(datalist) if isinstance(datalist, Mapping) else read_json(Path(datalist))
    missing = [k for k in ("classes", "encoding", "intensity_range") if k not in meta]
    if missing:
        raise DataError(f"{where}: no {', '.join(repr(k) for k in missing)}; re-export it with msaug export monai (msaug's datalists record them)")
    return meta


def datalist_transforms(datalist: str | os.PathLike[str] | Mapping[str, Any], image_key: str = "image", label_key: str = "label") -> Compose:
    """Load, scale and decode the pairs of an msaug datalist: ``LoadImaged`` → ``ScaleIntensityRanged`` → :class:`DecodeLabelsd`.

    Images come out float32 ``[C, H, W]`` in [0, 1] (the datalist's ``intensity_range`` mapped
    to [0, 1], as msaug reads them), labels float32 ``[K, H, W]``. PNGs are read row-major
    (``reverse_indexing=False``), so the arrays are ``[.., H, W]`` like msaug's, not MONAI's
    default x-first ``[.., W, H]``.
    """
    meta = read_datalist(datalist)
    low, high = (float(v) for v in meta["intensity_range"])
    return Compose([
        LoadImaged(keys=[image_key, label_key], reader="PILReader", reverse_indexing=False, ensure_channel_first=True),
        ScaleIntensityRanged(keys=image_key, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True),
        DecodeLabelsd(keys=label_key, classes=list(meta["classes"]), encoding=str(meta["encoding"])),
    ])
