"""Building blocks shared by every generator and discriminator family.

Generators use only per-sample normalisation (GroupNorm, PixelNorm, SPADE on GroupNorm), never
batch statistics: generated row *b* must depend only on its own input and noise, so that
any batching or sharding of generation gives the same pair for the same index.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def channel_schedule(resolution: int, width: int) -> int:
    """Channels at a feature-map side ``resolution``: wide at coarse scales, narrow at fine ones.

    ``width`` is the channel multiplier (the stage's ``width`` param). Capped at ``4 * width``
    so a quick CPU run stays cheap; raise ``width`` on a GPU.
    """
    return int(min(4 * width, max(8, width * 128 // max(resolution, 1))))


def upsampling_plan(size: int, min_start: int = 4, max_levels: int = 8) -> tuple[int, int]:
    """``(start, levels)``: a ``start``-pixel map doubled ``levels`` times reaches at least ``size``.

    Sizes that are not ``start * 2**levels`` are generated slightly larger and resized down,
    so any ``data.size`` works.
    """
    levels = max(0, min(max_levels, int(math.floor(math.log2(max(size, min_start) / min_start)))))
    start = math.ceil(size / 2**levels)
    return start, levels


def fit_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize feature maps or outputs to ``size`` (area when shrinking); no-op when already there."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    return F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    """Per-sample normalisation (GroupNorm with up to 8 groups dividing ``channels``)."""
    groups = math.gcd(8, channels)
    return nn.GroupNorm(groups, channels, affine=affine)


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector to unit length (ProGAN).

    Unlike GroupNorm it removes no spatial statistics, so the variation a latent vector
    puts into a coarse feature map survives: GroupNorm at 4x4 erases much of it and pushes
    an unconditional generator towards one output.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ConvNormAct(nn.Sequential):
    """3x3 convolution, per-sample normalisation (GroupNorm or PixelNorm), LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, norm: str = "group"):
        layer = PixelNorm() if norm == "pixel" else group_norm(cout)
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), layer, nn.LeakyReLU(0.2, inplace=True))


class UpBlock(nn.Module):
    """Nearest-neighbour x2 upsampling followed by two conv/norm/activation layers."""

    def __init__(self, cin: int, cout: int, norm: str = "group"):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(cin, cout, norm), ConvNormAct(cout, cout, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """Residual discriminator block: two convs and a x2 average pool, with a pooled 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        h = F.avg_pool2d(h, 2, ceil_mode=True)
        s = self.skip(F.avg_pool2d(x, 2, ceil_mode=True))
        return (h + s) * (1 / math.sqrt(2))


class MinibatchStdDev(nn.Module):
    """Appends the average feature standard deviation within small groups of samples (ProGAN/StyleGAN).

    A discriminator that sees how varied a group of samples is can punish a generator that
    collapses onto one output: the main failure of GANs trained on a few dozen images.
    Groups are consecutive samples of size 4, 2 or 1 chosen so that a group never spans the
    middle of the batch, where the trainer joins its real and generated halves.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        group = next(g for g in (4, 2, 1) if b % g == 0 and (b // 2) % g == 0) if b > 1 else 1
        y = x.float().view(b // group, group, *x.shape[1:])
        std = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [b // group]
        std = std.repeat_interleave(group).view(b, 1, 1, 1).expand(b, 1, *x.shape[2:])
        return torch.cat([x, std.to(x.dtype)], dim=1)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019): the label map sets scale and shift.

    The label is resized to the feature map with nearest-neighbour sampling so class
    boundaries stay sharp at every scale.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int | None = None):
        super().__init__()
        # the label branch runs at full resolution in the last blocks: as wide as the block, at most 32
        hidden = hidden or max(8, min(32, channels))
        self.norm = group_norm(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, label: torch.Tensor, normed: torch.Tensor | None = None) -> torch.Tensor:
        """``norm(x) * (1 + gamma) + beta``; ``normed`` is ``norm(x)`` when the caller has it already (it is not changed)."""
        h = self.shared(at_feature_size(label, x))
        normed = self.norm(x) if normed is None else normed
        if torch.is_grad_enabled():
            return normed * (1 + self.gamma(h)) + self.beta(h)
        # generation: the same products and sums, in place in the gamma convolution's output
        # (one pass over the feature map less, and no temporaries; equal to the line above bit for bit)
        return self.gamma(h).add_(1).mul_(normed).add_(self.beta(h))


def at_feature_size(label: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``label`` resized (nearest) to the spatial size of the feature map ``x``; as is when it already has it."""
    if label.shape[-2:] == x.shape[-2:]:
        return label
    return F.interpolate(label, size=x.shape[-2:], mode="nearest")


class SPADEResBlock(nn.Module):
    """SPADE residual block (two SPADE-norm-activation-conv units and a learned shortcut)."""

    def __init__(self, cin: int, cout: int, label_channels: int):
        super().__init__()
        mid = min(cin, cout)
        self.norm1 = SPADE(cin, label_channels)
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1)
        self.norm2 = SPADE(mid, label_channels)
        self.conv2 = nn.Conv2d(mid, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.shortcut_norm = SPADE(cin, label_channels) if cin != cout else None

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        label = at_feature_size(label, x)  # once for the block's three SPADE layers (all at x's size)
        normed = self.norm1.norm(x)  # the shortcut's SPADE normalises the same x the same way: once
        h = self.conv1(F.leaky_relu(self.norm1(x, label, normed), 0.2))
        h = self.conv2(F.leaky_relu(self.norm2(h, label), 0.2))
        s = x if self.shortcut is None else self.shortcut(self.shortcut_norm(x, label, normed))  # type: ignore[misc]
        return h + s
