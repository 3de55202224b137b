"""Random geometric and intensity transforms shared by built-in stages and training code.

Geometric transforms warp label maps label-safely: the one-hot (or multilabel) channels are
resampled bilinearly as soft occupancies and hardened afterwards, so no label value is
invented and boundaries stay smooth.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from msaug.label_encoding import harden


def random_warp_grid(
    rng: np.random.Generator,
    size: int,
    rotation: float = 10.0,
    scale: float = 0.08,
    translate: float = 0.04,
    elastic: float = 0.03,
    elastic_points: int = 5,
) -> torch.Tensor:
    """A ``[1, size, size, 2]`` sampling grid: random affine plus smooth elastic displacement.

    ``rotation`` in degrees, ``scale`` and ``translate`` as fractions, ``elastic`` as the
    displacement amplitude relative to the image half-width, on a coarse ``elastic_points``
    control grid interpolated bicubically.
    """
    angle = math.radians(rng.uniform(-rotation, rotation))
    s = 1.0 + rng.uniform(-scale, scale)
    tx, ty = rng.uniform(-translate, translate, size=2) * 2
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    theta = torch.tensor([[cos, -sin, tx], [sin, cos, ty]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 1, size, size], align_corners=False)
    if elastic > 0:
        coarse = torch.from_numpy(rng.normal(0.0, elastic, size=(1, 2, elastic_points, elastic_points)).astype(np.float32))
        field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1)
    return grid


def warp_label(label: torch.Tensor, grid: torch.Tensor, encoding: str) -> torch.Tensor:
    """Warp ``[K, H, W]`` hard label channels with a sampling grid, label-safely."""
    soft = label[None].float()
    if encoding == "index":
        # out-of-frame pixels become background (channel 0), not "nothing"
        border = torch.zeros_like(soft)
        border[:, 0] = 1.0
        warped = F.grid_sample(soft - border, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        warped = warped + F.grid_sample(border, grid, mode="bilinear", padding_mode="border", align_corners=False)
    else:
        warped = F.grid_sample(soft, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return harden(warped[0], encoding)


def warp_image(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Warp a ``[C, H, W]`` image with a sampling grid (border pixels are repeated)."""
    return F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[C, H, W]`` or ``[B, C, H, W]`` (reflect padding)."""
    if sigma <= 0.05:
        return x
    batched = x if x.dim() == 4 else x[None]
    c = batched.shape[1]
    k = gaussian_kernel1d(sigma).to(batched)
    r = k.numel() // 2
    r_h, r_w = min(r, batched.shape[-2] - 1), min(r, batched.shape[-1] - 1)
    out = F.pad(batched, (r_w, r_w, 0, 0), mode="reflect" if r_w else "replicate")
    kw = k[r - r_w : r + r_w + 1]
    out = F.conv2d(out, kw.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, r_h, r_h), mode="reflect" if r_h else "replicate")
    kh = k[r - r_h : r + r_h + 1]
    out = F.conv2d(out, kh.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return out if x.dim() == 4 else out[0]


def smooth_field(rng: np.random.Generator, size: int, points: int = 4, amplitude: float = 0.3) -> torch.Tensor:
    """A smooth multiplicative ``[1, size, size]`` field around 1 (an MRI/X-ray style bias field)."""
    coarse = torch.from_numpy(rng.normal(0.0, amplitude / 2, size=(1, 1, points, points)).astype(np.float32))
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0]
    return torch.exp(field)
