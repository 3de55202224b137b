"""Tiny fundus release fixtures: photographs, vessel maps and masks with known contents."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 20, 20  # square fixtures load pixel for pixel at size 20


def fov_disc(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (0.45 * min(h, w)) ** 2


def vessels(h: int, w: int, seed: int) -> np.ndarray:
    """A cross of vessels at a seed-dependent place, inside the FOV."""
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), dtype=bool)
    m[h // 2 + int(rng.integers(-2, 3)), 3 : w - 3] = True
    m[3 : h - 3, w // 2 + int(rng.integers(-2, 3))] = True
    return m & fov_disc(h, w)


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """RGB uint8: orange retina, darker vessels, black outside the FOV."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[fov_disc(h, w)] = (200, 100, 40)
    img[vessels(h, w, seed)] = (110, 40, 15)
    return img


def save(path: Path, array: np.ndarray, fmt: str | None = None, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fmt = fmt or Image.registered_extensions()[Path(path.stem if gz else path.name).suffix.lower()]
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def binary(m: np.ndarray) -> np.ndarray:
    return (m.astype(np.uint8) * 255)


def write_drive(root: Path, h: int = H, w: int = W) -> None:
    """Two training and two test cases in the DRIVE layout; the test set has a second annotator.

    ``h, w = 584, 565`` writes photographs of DRIVE's own size.
    """
    for subset, keys in (("training", ("21", "22")), ("test", ("01", "02"))):
        for key in keys:
            seed = int(key)
            save(root / subset / "images" / f"{key}_{subset}.tif", photo(h, w, seed), "TIFF")
            save(root / subset / "1st_manual" / f"{key}_manual1.gif", binary(vessels(h, w, seed)), "GIF")
            save(root / subset / "mask" / f"{key}_{subset}_mask.gif", binary(fov_disc(h, w)), "GIF")
            if subset == "test":
                save(root / subset / "2nd_manual" / f"{key}_manual2.gif", binary(vessels(h, w, seed + 100)), "GIF")
