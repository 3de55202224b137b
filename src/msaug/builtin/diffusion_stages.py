"""Registers the diffusion stage families (``diffusion.*``), built on MONAI's generative classes.

A built-in plugin of its own, next to ``msaug.builtin.engine_stages``: each hook
implementation is called on its own, so a MONAI without the generative classes is reported
by ``msaug stages list`` and leaves the GAN families working.
"""

from __future__ import annotations

from msaug.hookspecs import hookimpl
from msaug.plugins import StageRegistry


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    # imported here so that loading the plugin list does not import the training stack or MONAI
    from msaug.train.diffusion import DiffusionLabelGeneratorStage, DiffusionTranslatorStage

    register(DiffusionLabelGeneratorStage, name="diffusion.label_generator")
    register(DiffusionTranslatorStage, name="diffusion.translator")
