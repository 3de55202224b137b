"""Segmentation: segmenters, training protocols, metrics, quality control and export.

The evaluation entry point used by the pipeline runner is
:func:`msaug.segment.evaluate.evaluate_pipeline`; :class:`MixedDataset` is the ``mix``
protocol's data for anyone's own training loop.
"""

from __future__ import annotations

from msaug.segment.data import Augmentation, MixedDataset, SegmentationTensors, random_crops, square_tensors, to_tensors
from msaug.segment.inference import padded_forward, sliding_window_logits
from msaug.segment.metrics import METRICS, hd95, image_metrics, summarize
from msaug.segment.models import architectures, build_segmenter, load_local_weights
from msaug.segment.protocols import PROTOCOLS, run_protocol
from msaug.segment.segmenter import Segmenter, SegmenterInfo
from msaug.segment.train import TrainResult, TrainSettings, train_segmenter

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "Augmentation",
    "MixedDataset",
    "SegmentationTensors",
    "Segmenter",
    "SegmenterInfo",
    "TrainResult",
    "TrainSettings",
    "architectures",
    "build_segmenter",
    "hd95",
    "image_metrics",
    "load_local_weights",
    "padded_forward",
    "random_crops",
    "run_protocol",
    "sliding_window_logits",
    "square_tensors",
    "summarize",
    "to_tensors",
    "train_segmenter",
]
