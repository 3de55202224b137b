"""Batching msaug samples for ``torch.utils.data.DataLoader``.

A :class:`msaug.Sample` holds numpy arrays, an optional region of interest and a free-form
``meta`` dict, which torch's default collate cannot stack (``roi`` may be ``None``, ``meta``
keys differ). :func:`collate_samples` turns a list of samples into one batch of tensors::

    from torch.utils.data import DataLoader
    import msaug

    loader = DataLoader(msaug.SyntheticDataset("runs/x/synthetic"), batch_size=8,
                        shuffle=True, collate_fn=msaug.collate_samples)
    for batch in loader:
        batch["image"]  # float32 [B, C, H, W] in [0, 1]
        batch["label"]  # float32 [B, K, H, W], 0/1 per class channel (index or multilabel alike)
        batch["roi"]    # bool [B, H, W]; all True for a sample without a region of interest
        batch["id"]     # list of B sample ids; batch["meta"]: list of B dicts
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from msaug.errors import DataError
from msaug.sample import Sample


def collate_samples(samples: Sequence[Sample]) -> dict[str, Any]:
    """Stack samples of one size into ``{"image", "label", "roi", "id", "meta"}`` (see the module doc).

    Raises :class:`msaug.DataError` naming the samples when sizes or channel counts differ,
    or when a sample has no image (a labels-only dataset).
    """
    if not samples:
        raise DataError("collate_samples: got an empty batch")
    first = samples[0]
    labels, images, rois = [], [], []
    for s in samples:
        label = np.asarray(s.label)
        if label.shape != np.asarray(first.label).shape:
            raise DataError(
                f"collate_samples: sample {s.id!r} has label shape {label.shape}, sample {first.id!r} {np.asarray(first.label).shape}; "
                "a batch needs samples of one size and class count (load the dataset at one size)"
            )
        if s.image is None:
            raise DataError(f"collate_samples: sample {s.id!r} has no image (a labels-only dataset); batches need image/label pairs")
        image = np.asarray(s.image)
        if image.ndim != 3 or image.shape[1:] != label.shape[1:] or image.shape[0] != np.asarray(first.image).shape[0]:
            raise DataError(
                f"collate_samples: sample {s.id!r} has image shape {image.shape}, expected "
                f"[{np.asarray(first.image).shape[0]}, {label.shape[1]}, {label.shape[2]}] like sample {first.id!r}"
            )
        roi = np.ones(label.shape[1:], bool) if s.roi is None else np.asarray(s.roi, bool)
        if roi.shape != label.shape[1:]:
            raise DataError(f"collate_samples: sample {s.id!r} has roi shape {roi.shape}, its label is {label.shape[1]}x{label.shape[2]}")
        images.append(torch.from_numpy(image.astype(np.float32, copy=False)))
        labels.append(torch.from_numpy(label.astype(np.float32, copy=False)))
        rois.append(torch.from_numpy(roi))
    return {
        "image": torch.stack(images),
        "label": torch.stack(labels),
        "roi": torch.stack(rois),
        "id": [str(s.id) for s in samples],
        "meta": [dict(s.meta) for s in samples],
    }
