"""Discriminator networks.

Every discriminator returns a list with one entry per scale; each entry is the list of
intermediate feature maps ending with the logits. Losses average over scales, and the
feature-matching loss compares the intermediate features of real and generated inputs.
The unconditional discriminator (:class:`SkipDiscriminator`) also sees the spread of small
groups of samples (minibatch standard deviation), which counters mode collapse; its groups
never mix the real and generated halves of a concatenated batch. The conditional patch
discriminators see one sample at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from msaug.nn.layers import DownBlock, MinibatchStdDev, channel_schedule

Features = list[list[torch.Tensor]]


class SkipDiscriminator(nn.Module):
    """Residual discriminator that also reads the input at every scale (input skips, as in MSG-GAN).

    Each level adds a 1x1 projection of the average-pooled input to its features, so
    coarse layout and fine detail are judged together: the multi-resolution counterpart of
    :class:`~msaug.nn.generators.SkipGenerator`.
    """

    def __init__(self, in_channels: int, size: int, width: int = 16):
        super().__init__()
        resolutions = [size]
        while resolutions[-1] > 4:
            resolutions.append(math.ceil(resolutions[-1] / 2))
        chans = [channel_schedule(r, width) for r in resolutions]
        self.inputs = nn.ModuleList(nn.Conv2d(in_channels, c, 1) for c in chans[:-1])
        self.blocks = nn.ModuleList(DownBlock(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.minibatch_std = MinibatchStdDev()
        self.final_conv = nn.Conv2d(chans[-1] + 1, chans[-1], 3, padding=1)
        self.final = nn.Linear(chans[-1] * resolutions[-1] ** 2, 1)

    def forward(self, x: torch.Tensor) -> Features:
        h = F.leaky_relu(self.inputs[0](x), 0.2) if len(self.inputs) else x
        feats = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            feats.append(h)
            if i + 1 < len(self.inputs):
                x = F.avg_pool2d(x, 2, ceil_mode=True)
                h = h + self.inputs[i + 1](x)
        h = F.leaky_relu(self.final_conv(self.minibatch_std(h)), 0.2)
        return [[*feats, self.final(h.flatten(1))]]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix): a map of real/fake logits for overlapping patches."""

    def __init__(self, in_channels: int, width: int = 16, layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList()
        cin = in_channels
        for i in range(layers):
            cout = width * min(2**i, 8)
            self.layers.append(nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)))
            cin = cout
        cout = width * min(2**layers, 8)
        self.layers.append(nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)))
        self.layers.append(nn.Conv2d(cout, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiScalePatchDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator: the same PatchGAN design at full, 1/2, 1/4 ... resolution."""

    def __init__(self, in_channels: int, width: int = 16, scales: int = 2, layers: int = 3):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, width, layers) for _ in range(scales))

    @staticmethod
    def coarsest_side(size: int, scales: int) -> int:
        """Side of the input the last scale sees: ``size`` halved (rounding up) ``scales - 1`` times."""
        for _ in range(scales - 1):
            size = math.ceil(size / 2)  # avg_pool2d(3, stride=2, padding=1)
        return size

    @staticmethod
    def smallest_side(layers: int = 3) -> int:
        """Smallest input side a PatchGAN of ``layers`` stride-2 4x4 convolutions can take (8 for 3 layers)."""
        return 2**layers

    @classmethod
    def size_problem(cls, size: int, scales: int, layers: int = 3) -> str | None:
        """Why ``scales`` scales cannot judge ``size``-pixel inputs, and what would fit; None if they can."""
        need = cls.smallest_side(layers)
        coarsest = cls.coarsest_side(size, scales)
        if coarsest >= need:
            return None
        smallest = next(s for s in range(need, 1 << 20) if cls.coarsest_side(s, scales) >= need)
        fitting = [k for k in range(1, scales) if cls.coarsest_side(size, k) >= need]
        if not fitting:
            return (f"the {size} px inputs are below the {need} px its patch discriminator needs even at one scale; "
                    f"use a size of at least {need} px" + (f" with scales: 1, or {smallest} px with scales: {scales}" if scales > 1 else ""))
        times = f"{scales - 1} time{'s' if scales > 2 else ''}"
        fix = f"use scales: {max(fitting)}" + (" or fewer" if max(fitting) > 1 else "")
        return (f"the multi-scale discriminator halves the {size} px inputs {times}, to {coarsest} px, below the {need} px "
                f"its patch layers need; {fix}, or a size of at least {smallest} px")

    def forward(self, x: torch.Tensor) -> Features:
        out = []
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(disc(x))
        return out
