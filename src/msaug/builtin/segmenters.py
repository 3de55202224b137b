"""Registers every segmentation-models-pytorch architecture as a segmenter (``unet``, ``fpn``...)."""

from __future__ import annotations

from functools import partial
from typing import Any

from msaug.hookspecs import hookimpl
from msaug.plugins import SegmenterRegistry


def _build(arch: str, in_channels: int, classes: int, **options: Any) -> Any:
    from msaug.segment.models import build_segmenter

    return build_segmenter(arch, in_channels, classes, **options)


@hookimpl
def msaug_register_segmenters(register: SegmenterRegistry) -> None:
    from msaug.segment.models import architectures

    for name, cls in architectures().items():
        register(name, partial(_build, name), description=f"segmentation-models-pytorch {cls.__name__} (any smp or tu- timm encoder)")
