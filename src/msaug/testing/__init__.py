"""Test kit for stage plugins: the :class:`StageContract` base class, tiny samples and checks.

Installed as a pytest plugin (entry point ``pytest11``: ``msaug``), so the fixtures of
:mod:`msaug.testing.plugin` are available in every test session without a conftest.
This module is public API for plugin authors, like :mod:`msaug` itself.
"""

from __future__ import annotations

from msaug.testing.checks import check_output, check_outputs, check_rejects_unknown_params, modality_shape, stage_pairs
from msaug.testing.contract import TINY_PARAM_VALUES, StageCase, StageContract, tiny_params
from msaug.testing.samples import INDEX_CLASSES, MULTILABEL_CLASSES, TINY_VARIANTS, tiny_batch, tiny_dataset, tiny_spec

__all__ = [
    "INDEX_CLASSES",
    "MULTILABEL_CLASSES",
    "TINY_PARAM_VALUES",
    "TINY_VARIANTS",
    "StageCase",
    "StageContract",
    "check_output",
    "check_outputs",
    "check_rejects_unknown_params",
    "modality_shape",
    "stage_pairs",
    "tiny_batch",
    "tiny_dataset",
    "tiny_params",
    "tiny_spec",
]
