"""``xray.shenzhen``: the Shenzhen chest X-ray set with its lung masks, lungs only.

Expected under ``data.root`` (``ChinaSet_AllFiles`` or the folder holding it)::

    CXR_png/CHNCXR_0001_0.png ...
    mask/CHNCXR_0001_0_mask.png ...     # one mask holding both lungs

Only images with a mask are used (the published masks cover part of the set). The
combined mask is split into the two lungs by connected regions and each is assigned by
the image side it lies on (the patient's right lung is on the image's left).
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

LAYOUT = "CXR_png/*.png with mask/*_mask.png"


def shenzhen_dataset(config: DataConfig) -> LazyDataset:
    """Dataset factory for ``xray.shenzhen``."""
    reject_options(config, "xray.shenzhen")
    root = require_root(config, "xray.shenzhen", LAYOUT)
    base = root / "ChinaSet_AllFiles" if (root / "ChinaSet_AllFiles").is_dir() else root
    image_dir, mask_dir = find_dir(base, ["CXR_png"]), find_dir(base, ["mask"])
    missing = [name for name, d in (("CXR_png/", image_dir), ("mask/", mask_dir)) if d is None]
    if missing or image_dir is None or mask_dir is None:
        raise DataError(f"{base}: missing {' and '.join(missing)} (xray.shenzhen expects {LAYOUT})")
    images = files_by_stem(image_dir, (".png",))
    masks = files_by_stem(mask_dir, (".png",), strip="_mask")
    cases = sorted(set(images) & set(masks))
    if not cases:
        raise DataError(f"{base}: no image in CXR_png/ has a mask/<name>_mask.png")
    spec = xray_spec(config.size, LUNG_CLASSES)

    def read(case: str) -> Sample:
        image = read_grey(images[case])
        combined = read_mask(masks[case])
        if combined.shape != image.shape:
            raise DataError(f"{masks[case]}: mask is {combined.shape[1]}x{combined.shape[0]}, image is {image.shape[1]}x{image.shape[0]}")
        left, right = lungs_by_side([combined], str(masks[case]))
        return make_sample(case, image, [left, right], spec, {"image_file": str(images[case])})

    return LazyDataset(spec, limit(cases, config), read)
