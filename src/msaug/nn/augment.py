"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for few-shot GAN training.

The discriminator sees augmented real *and* augmented generated samples, and gradients
flow through the augmentation into the generator, so a 10-20 image training set is not
memorised by the discriminator and the generator does not learn the augmentations.

Tensors passed in one call share the same geometric transform per row (a conditional
discriminator's label and image stay aligned; real/fake pairs used for feature matching
get identical transforms). Colour jitter touches only the leading ``color_channels`` of
each tensor (image channels, never label channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")``; raises ``ValueError`` on unknown names."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown augmentation {bad[0]!r}; valid: {', '.join(POLICIES)} (comma separated) or ''")
    return names


def diff_augment(
    tensors: Sequence[torch.Tensor], policy: Sequence[str], color_channels: Sequence[int] | None = None
) -> list[torch.Tensor]:
    """Augment ``[B, C_i, H, W]`` tensors of equal ``B, H, W`` with shared random parameters."""
    out = list(tensors)
    if not out or not policy:
        return out
    color_channels = list(color_channels or [0] * len(out))
    ref = out[0]
    if "color" in policy:
        factors = torch.rand(ref.shape[0], 3, 1, 1, 1, device=ref.device)
        out = [_color(t, c, factors) if c else t for t, c in zip(out, color_channels)]
    if "translation" in policy:
        out = _translation(out)
    if "cutout" in policy:
        out = _cutout(out)
    return out


def _color(x: torch.Tensor, channels: int, factors: torch.Tensor) -> torch.Tensor:
    """Brightness, saturation (RGB only) and contrast jitter of the first ``channels`` channels."""
    f = factors.to(x.dtype)
    img, rest = x[:, :channels], x[:, channels:]
    img = img + (f[:, 0] - 0.5)
    if channels > 1:
        mean = img.mean(dim=1, keepdim=True)
        img = (img - mean) * (f[:, 1] * 2) + mean
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    img = (img - mean) * (f[:, 2] + 0.5) + mean
    return torch.cat([img, rest], dim=1)


def _translation(xs: list[torch.Tensor], ratio: float = 0.125) -> list[torch.Tensor]:
    b, _, h, w = xs[0].shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = xs[0].device
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=dev)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=dev)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=dev), torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    return [F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2) for x in xs]


def _cutout(xs: list[torch.Tensor], ratio: float = 0.5) -> list[torch.Tensor]:
    b, _, h, w = xs[0].shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dev = xs[0].device
    ox = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=dev)
    oy = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=dev)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=dev), torch.arange(ch, device=dev), torch.arange(cw, device=dev), indexing="ij"
    )
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, device=dev)
    mask[gb, gx, gy] = 0
    return [x * mask.unsqueeze(1).to(x.dtype) for x in xs]
