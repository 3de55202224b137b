"""Every registered stage (core.*, gan.*, xray.*, fundus.* and any installed plugin's) passes the stage contract.

The list comes from the registry, so a stage added anywhere is tested here without
editing this file; only stages whose params have no usable defaults need an entry in
``params``, and the diffusion families one for a two-level U-Net sampling in a handful of DDIM steps.
"""

from __future__ import annotations

from msaug import get_registries
from msaug.testing import StageContract


class TestEveryRegisteredStage(StageContract):
    stages = get_registries().stages.names()
    params = {name: {"levels": 2, "sample_steps": 4} for name in ("diffusion.label_generator", "diffusion.translator")}
