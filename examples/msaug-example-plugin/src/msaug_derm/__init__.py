"""msaug-example-plugin: dermoscopy skin lesions for msaug, written as any third party would.

It imports nothing from msaug but the public API (``msaug`` and ``msaug.testing``) and
adds, through msaug's hooks:

* the dataset ``derm.phantom``: procedural dermoscopy photographs of pigmented skin
  lesions with their lesion masks (:mod:`msaug_derm.phantom`);
* the stage ``derm.lesion_mask``: noise -> lesion mask from a statistical shape model of
  the lesion border fitted to the training masks (:mod:`msaug_derm.stages`);
* the label metric ``lesion_shape`` for the ``derm`` domain (:mod:`msaug_derm.metrics`).
"""

from __future__ import annotations

__version__ = "0.1.0"
