"""msaug-fundus: the retinal fundus domain for msaug.

Datasets ``fundus.phantom`` (procedural), ``fundus.drive``, ``fundus.chase_db1``,
``fundus.hrf`` and ``fundus.stare`` (original release layouts); stages
``fundus.vessel_mask``, ``fundus.mask_upscale``, ``fundus.image`` and ``fundus.joint``
(the engine's families with fundus defaults); the ``vessel_plausibility`` label metric.
Everything registers through the ``msaug`` entry point :mod:`msaug_fundus.plugin`.
"""

from __future__ import annotations

from msaug_fundus.fov import FOV_RADIUS_FRACTION, disc_fov, fov_from_image, fov_template
from msaug_fundus.metrics import vessel_plausibility
from msaug_fundus.phantom import FundusPhantom
from msaug_fundus.render import render_case
from msaug_fundus.spec import CLASSES, DOMAIN, fundus_spec

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "DOMAIN",
    "FOV_RADIUS_FRACTION",
    "FundusPhantom",
    "__version__",
    "disc_fov",
    "fov_from_image",
    "fov_template",
    "fundus_spec",
    "render_case",
    "vessel_plausibility",
]
