"""Names and sides of the chest structures the plugin labels.

"Left" and "right" are always the *patient's* sides. A standard posterior-anterior (PA)
chest radiograph is displayed as if facing the patient, so the patient's right lung and
clavicle appear on the *image's left* (small column indices) and the patient's left on
the image's right. Every loader, metric and post-processing step here follows that.
"""

from __future__ import annotations

from msaug import DataSpec

DOMAIN = "xray"

#: the five SCR structures, in the channel order of every xray label map
ANATOMY_CLASSES: tuple[str, ...] = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")
#: the lung-only datasets (Montgomery, Shenzhen)
LUNG_CLASSES: tuple[str, ...] = ("left_lung", "right_lung")

#: which half of the image a lateral structure lies on: -1 the image's left (patient's right),
#: +1 the image's right (patient's left); structures absent here (the heart) are central
IMAGE_SIDE: dict[str, int] = {
    "left_lung": +1,
    "right_lung": -1,
    "left_clavicle": +1,
    "right_clavicle": -1,
}


def xray_spec(size: int, classes: tuple[str, ...] = ANATOMY_CLASSES) -> DataSpec:
    """The DataSpec of every xray dataset: grey images, multilabel maps (clavicles overlap lungs)."""
    return DataSpec(classes=tuple(classes), encoding="multilabel", channels=1, size=size, domain=DOMAIN)
