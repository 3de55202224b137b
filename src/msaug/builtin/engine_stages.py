"""Registers the generative engine's trainable stage families (``gan.*``)."""

from __future__ import annotations

from msaug.hookspecs import hookimpl
from msaug.plugins import StageRegistry


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    # imported here so that loading the plugin list does not import the training stack
    from msaug.train.stages import JointStage, LabelGeneratorStage, LabelUpscalerStage, TranslatorStage

    register(LabelGeneratorStage, name="gan.label_generator")
    register(LabelUpscalerStage, name="gan.label_upscaler")
    register(TranslatorStage, name="gan.translator")
    register(JointStage, name="gan.joint")
