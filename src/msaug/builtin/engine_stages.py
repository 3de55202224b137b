"""Registers the generative engine's trainable stage families (``gan.*``)."""

from __future__ import annotations

from msaug.hookspecs import hookimpl
from msaug.plugins import StageRegistry


@hookimpl
def msaug_register_stages(register: StageRegistry) -> None:
    # The gan.* families are added here as msaug.nn / msaug.train land (issue 3).
    return None
