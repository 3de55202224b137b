"""Sample grids: label maps and images arranged as PNGs for a quick look during training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from msaug.io import image_to_array, write_png

#: class colours: background black, then well-separated hues
PALETTE = torch.tensor(
    [
        [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
    ],
    dtype=torch.float32,
) / 255.0


def colorize(label: torch.Tensor, encoding: str) -> torch.Tensor:
    """``[N, K, H, W]`` label maps -> ``[N, 3, H, W]`` RGB in [0, 1] (overlaps blended for multilabel)."""
    label = label.detach().float().cpu()
    k = label.shape[1]
    colors = PALETTE[torch.arange(k) % len(PALETTE)]
    if encoding == "index":
        return colors[label.argmax(dim=1)].permute(0, 3, 1, 2)
    colors = PALETTE[1:][torch.arange(k) % (len(PALETTE) - 1)]
    rgb = torch.einsum("nkhw,kc->nchw", label, colors)
    count = label.sum(dim=1, keepdim=True).clamp(min=1)
    return (rgb / count).clamp(0, 1)


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` images in [0, 1] -> ``[N, 3, H, W]`` (grey repeated, extra channels dropped)."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[1] == 1:
        return image.repeat(1, 3, 1, 1)
    return image[:, :3]


def save_grid(path: Path, rows: list[torch.Tensor]) -> None:
    """Write rows of ``[n, 3, H, W]`` tiles (all rows the same ``n`` and size) as one PNG."""
    tiles = torch.cat(rows, dim=0)
    grid = make_grid(tiles, nrow=rows[0].shape[0], padding=2, pad_value=0.5)
    write_png(path, image_to_array(np.asarray(grid.numpy(), dtype=np.float32)))
