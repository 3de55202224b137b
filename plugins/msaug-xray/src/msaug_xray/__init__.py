"""msaug-xray: the chest X-ray domain for msaug.

Datasets ``xray.phantom`` (procedural, the default), ``xray.scr`` (JSRT + SCR),
``xray.montgomery``, ``xray.shenzhen`` and ``xray.dicom``; the ``xray`` anatomical
plausibility metric; and the stages ``xray.anatomy_mask``, ``xray.mask_upscale``,
``xray.image`` and ``xray.joint``. "Left"/"right" are the patient's sides (see
:mod:`msaug_xray.anatomy`).
"""

from __future__ import annotations

from msaug_xray.anatomy import ANATOMY_CLASSES, DOMAIN, IMAGE_SIDE, LUNG_CLASSES, xray_spec
from msaug_xray.phantom import PhantomDataset, phantom_dataset, render_case
from msaug_xray.plausibility import anatomical_postprocess, plausibility_metrics

__version__ = "0.1.0"

__all__ = [
    "ANATOMY_CLASSES",
    "DOMAIN",
    "IMAGE_SIDE",
    "LUNG_CLASSES",
    "PhantomDataset",
    "anatomical_postprocess",
    "phantom_dataset",
    "plausibility_metrics",
    "render_case",
    "xray_spec",
]
