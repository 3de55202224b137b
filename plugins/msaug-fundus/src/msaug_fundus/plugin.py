"""The fundus plugin's hook implementations (entry point ``fundus`` in group ``msaug``)."""

from __future__ import annotations

from msaug import DatasetRegistry, LabelMetricRegistry, StageRegistry, hookimpl

from msaug_fundus.layouts import chase_db1_dataset, drive_dataset, hrf_dataset, stare_dataset
from msaug_fundus.metrics import vessel_plausibility
from msaug_fundus.phantom import phantom_dataset
from msaug_fundus.spec import DOMAIN


@hookimpl
def msaug_register_datasets(register: DatasetRegistry) -> None:
    register(
        "fundus.phantom",
        phantom_dataset,
        description="procedural colour fundus photographs with vessel maps and FOV (default 40 cases; "
        "options: lesion_probability)",
    )
    register("fundus.drive", drive_dataset, description="DRIVE release folder (options: subset=all|training|test, annotator=1|2); "
             "split: official = training 21-40 train / test 01-20 test")
    register("fundus.chase_db1", chase_db1_dataset, description="CHASE_DB1 release folder (options: annotator=1|2); no official split")
    register(
        "fundus.hrf",
        hrf_dataset,
        description="HRF release folder (options: conditions=[healthy, glaucoma, diabetic_retinopathy]); no official split",
    )
    register("fundus.stare", stare_dataset, description="STARE images and labels, .ppm or .ppm.gz (options: annotator=ah|vk); no official split")


@hookimpl
def msaug_register_label_metrics(register: LabelMetricRegistry) -> None:
    register(DOMAIN, "vessel_plausibility", vessel_plausibility)


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    from msaug_fundus.stages import FUNDUS_STAGES

    for name, cls in FUNDUS_STAGES.items():
        register(cls, name=name)
