"""The ``xray`` plugin: registers the chest X-ray datasets, label metric and stages with msaug."""

from __future__ import annotations

from typing import Any

from msaug import hookimpl
from msaug_xray.anatomy import DOMAIN
from msaug_xray.plausibility import plausibility_metrics


@hookimpl
def msaug_register_stages(register: Any) -> None:
    # imported here so that listing plugins does not import the training stack
    from msaug_xray.stages import STAGES

    for stage in STAGES:
        register(stage, name=stage.name)


@hookimpl
def msaug_register_datasets(register: Any) -> None:
    from msaug_xray.loaders import dicom_dataset, montgomery_dataset, scr_dataset, shenzhen_dataset
    from msaug_xray.phantom import phantom_dataset

    register(
        "xray.phantom",
        phantom_dataset,
        description="procedural PA chest radiographs, 12-bit, 5 SCR structures (multilabel); count default 200",
    )
    register("xray.scr", scr_dataset, description="JSRT .IMG radiographs with SCR masks (lungs, heart, clavicles)")
    register("xray.montgomery", montgomery_dataset, description="Montgomery County CXR set (CXR_png + ManualMask), lungs")
    register("xray.shenzhen", shenzhen_dataset, description="Shenzhen CXR set (CXR_png + mask/*_mask.png), lungs")
    register("xray.dicom", dicom_dataset, description="DICOM radiographs (images/*.dcm) with per-structure masks/<name>/")


@hookimpl
def msaug_register_label_metrics(register: Any) -> None:
    register(DOMAIN, "anatomical_plausibility", plausibility_metrics)
