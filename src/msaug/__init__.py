"""msaug: plugin-based multi-stage generative augmentation for medical image segmentation.

This module's exports are the public API promised to plugin authors.
"""

from __future__ import annotations

from msaug.api import run_pipeline
from msaug.batch import collate_samples
from msaug.data import DataConfig, SplitConfig, load_dataset, split_indices
from msaug.errors import CheckpointError, CompositionError, ConfigError, DataError, MsaugError, UnknownNameError
from msaug.hookspecs import hookimpl
from msaug.io import read_image, read_label_array
from msaug.label_encoding import harden
from msaug.modality import Encoding, Image, Label, Modality, Noise
from msaug.plugins import (
    DatasetRegistry,
    LabelMetricRegistry,
    SegmenterRegistry,
    StageRegistry,
    get_registries,
)
from msaug.progress import PlainReporter, ProgressTask, Reporter, SilentReporter
from msaug.resize import resize_image, resize_label
from msaug.rng import BatchRNG
from msaug.sample import Dataset, DataSpec, ListDataset, Sample
from msaug.stage import Budget, FitContext, Pairs, Stage, StageParams
from msaug.synthetic import SyntheticDataset

__version__ = "0.1.0"

__all__ = [
    "BatchRNG",
    "Budget",
    "CheckpointError",
    "CompositionError",
    "ConfigError",
    "DataConfig",
    "DataError",
    "DataSpec",
    "Dataset",
    "DatasetRegistry",
    "Encoding",
    "FitContext",
    "Image",
    "Label",
    "LabelMetricRegistry",
    "ListDataset",
    "Modality",
    "MsaugError",
    "Noise",
    "Pairs",
    "PlainReporter",
    "ProgressTask",
    "Reporter",
    "Sample",
    "SegmenterRegistry",
    "SilentReporter",
    "SplitConfig",
    "Stage",
    "StageParams",
    "StageRegistry",
    "SyntheticDataset",
    "UnknownNameError",
    "__version__",
    "collate_samples",
    "get_registries",
    "harden",
    "hookimpl",
    "load_dataset",
    "read_image",
    "read_label_array",
    "resize_image",
    "resize_label",
    "run_pipeline",
    "split_indices",
]
