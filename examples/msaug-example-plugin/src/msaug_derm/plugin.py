"""The ``derm`` plugin: msaug finds this module through the ``msaug`` entry point and calls its hooks."""

from __future__ import annotations

from msaug import DatasetRegistry, LabelMetricRegistry, StageRegistry, hookimpl

from msaug_derm.metrics import DOMAIN, lesion_shape_metrics
from msaug_derm.phantom import phantom_dataset
from msaug_derm.stages import LesionMask


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    register(LesionMask, name="derm.lesion_mask")


@hookimpl
def msaug_register_datasets(register: DatasetRegistry) -> None:
    register(
        "derm.phantom",
        phantom_dataset,
        description="procedural dermoscopy photographs of pigmented lesions (RGB, background/lesion); count default 100",
    )


@hookimpl
def msaug_register_label_metrics(register: LabelMetricRegistry) -> None:
    register(DOMAIN, "lesion_shape", lesion_shape_metrics)
