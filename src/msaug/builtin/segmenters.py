"""Registers segmentation-models-pytorch architectures as segmenters."""

from __future__ import annotations

from msaug.hookspecs import hookimpl
from msaug.plugins import SegmenterRegistry


@hookimpl
def msaug_register_segmenters(register: SegmenterRegistry) -> None:
    # Filled by msaug.segment (issue 6).
    return None
