"""``xray.montgomery``: the Montgomery County chest X-ray set, lungs only.

Expected under ``data.root`` (the ``MontgomerySet`` folder, or the folder holding it)::

    CXR_png/MCUCXR_0001_0.png ...
    ManualMask/leftMask/MCUCXR_0001_0.png
    ManualMask/rightMask/MCUCXR_0001_0.png

Channels are ``left_lung``, ``right_lung`` (the patient's sides). Each mask is assigned by
the side of the image it lies on (the patient's right lung is on the image's left), so
the channels mean the patient's sides whatever convention the folder names follow.
"""

from __future__ import annotations

from msaug import DataConfig, DataError, Sample
from msaug_xray.anatomy import LUNG_CLASSES
from msaug_xray.loaders.common import (
    LazyDataset,
    files_by_stem,
    find_dir,
    limit,
    lungs_by_side,
    make_sample,
    read_grey,
    read_mask,
    reject_options,
    require_root,
    xray_spec,
)

LAYOUT = "CXR_png/*.png with ManualMask/leftMask/*.png and ManualMask/rightMask/*.png"


def montgomery_dataset(config: DataConfig) -> LazyDataset:
    """Dataset factory for ``xray.montgomery``."""
    reject_options(config, "xray.montgomery")
    root = require_root(config, "xray.montgomery", LAYOUT)
    base = root / "MontgomerySet" if (root / "MontgomerySet").is_dir() else root
    image_dir = find_dir(base, ["CXR_png"])
    if image_dir is None:
        raise DataError(f"{base}: no CXR_png/ folder (xray.montgomery expects {LAYOUT})")
    mask_dirs = {side: base / "ManualMask" / f"{side}Mask" for side in ("left", "right")}
    missing = [str(p.relative_to(base)) for p in mask_dirs.values() if not p.is_dir()]
    if missing:
        raise DataError(f"{base}: missing {', '.join(missing)} (xray.montgomery expects {LAYOUT})")
    images = files_by_stem(image_dir, (".png",))
    masks = {side: files_by_stem(d, (".png",)) for side, d in mask_dirs.items()}
    cases = sorted(set(images) & set(masks["left"]) & set(masks["right"]))
    if not cases:
        raise DataError(f"{base}: no image in CXR_png/ has both a leftMask and a rightMask file of the same name")
    spec = xray_spec(config.size, LUNG_CLASSES)

    def read(case: str) -> Sample:
        image = read_grey(images[case])
        regions = [read_mask(masks["left"][case]), read_mask(masks["right"][case])]
        for region, side in zip(regions, ("left", "right")):
            if region.shape != image.shape:
                raise DataError(f"{masks[side][case]}: mask is {region.shape[1]}x{region.shape[0]}, image is {image.shape[1]}x{image.shape[0]}")
        left, right = lungs_by_side(regions, str(images[case]))
        return make_sample(case, image, [left, right], spec, {"image_file": str(images[case])})

    return LazyDataset(spec, limit(cases, config), read)
