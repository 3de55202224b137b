"""Shared fixtures: small real datasets written to disk in the folder layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image as PILImage


def make_shapes_case(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey image with a disc (class 1) and a square (class 2), and its index label map."""
    yy, xx = np.mgrid[0:size, 0:size]
    label = np.zeros((size, size), np.uint8)
    cy, cx, r = rng.uniform(0.3, 0.7, 2) * size, None, rng.uniform(0.12, 0.22) * size
    cy, cx = cy[0], cy[1]
    label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    s = int(rng.uniform(0.1, 0.18) * size)
    y0, x0 = rng.integers(0, size - s, 2)
    label[y0 : y0 + s, x0 : x0 + s] = 2
    image = 0.2 + 0.5 * (label == 1) + 0.3 * (label == 2) + rng.normal(0, 0.03, (size, size))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), label


def write_folder_dataset(root: Path, n: int = 8, size: int = 32, seed: int = 0, images: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    if images:
        (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, label = make_shapes_case(rng, size)
        PILImage.fromarray(label).save(root / "labels" / f"case{i:03d}.png")
        if images:
            PILImage.fromarray(image).save(root / "images" / f"case{i:03d}.png")
    return root


CLASSIC = {
    "name": "shapes-classic",
    "data": {
        "dataset": "folder",
        "root": "data",
        "size": 32,
        "classes": ["background", "disc", "square"],
        "encoding": "index",
        "channels": 1,
        "split": {"train": 0.75, "test": 0.25},
    },
    "stages": [
        {"use": "core.real_labels", "params": {"size": 16}},
        {"use": "core.label_resize", "params": {"in_size": 16}},
        {"use": "core.lab2im"},
    ],
    "generate": {"count": 10, "batch_size": 4},
    "profiles": {"quick": {"generate.count": 6}, "full": {"data.size": 64}},
}


@pytest.fixture
def shapes_dir(tmp_path: Path) -> Path:
    return write_folder_dataset(tmp_path / "data")


@pytest.fixture
def classic_yaml(tmp_path: Path, shapes_dir: Path) -> Path:
    path = tmp_path / "classic.yaml"
    path.write_text(yaml.safe_dump(CLASSIC, sort_keys=False))
    return path
