"""Generator networks of the four stage families.

* :class:`SkipGenerator` — noise to a multi-channel map with an output head at *every*
  scale, summed coarse-to-fine (the "skip" generator of StyleGAN2 / MSG-GAN): coarse
  scales learn layout first, which is what keeps a few-shot label generator stable.
  Used for label maps (``gan.label_generator``) and jointly for image + label (``gan.joint``).
* :class:`LabelUpscalerNet` — a small U-Net from a low-resolution label map plus noise
  maps to high-resolution label logits. The upsampled input sets a strong prior logit and
  the network adds a *bounded* correction, so it can reshape boundaries (varied by the
  noise) but can neither erase a structure's core nor invent one far from the input: thin
  structures such as clavicles survive even a briefly trained upscaler.
* :class:`SPADEGenerator` — label map + noise vector to an image with SPADE residual blocks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from msaug.nn.layers import ConvNormAct, SPADEResBlock, UpBlock, channel_schedule, fit_to, upsampling_plan
from msaug.resize import Downsample, check_downsample


class SkipGenerator(nn.Module):
    """Noise ``[B, noise_dim]`` -> raw outputs ``[B, out_channels, size, size]``."""

    def __init__(self, noise_dim: int, out_channels: int, size: int, width: int = 16):
        super().__init__()
        self.noise_dim, self.size = noise_dim, size
        start, levels = upsampling_plan(size)
        resolutions = [start * 2**i for i in range(levels + 1)]
        chans = [channel_schedule(r, width) for r in resolutions]
        self.start = start
        self.fc = nn.Linear(noise_dim, chans[0] * start * start)
        self.stem = ConvNormAct(chans[0], chans[0], norm="pixel")
        self.blocks = nn.ModuleList(UpBlock(a, b, norm="pixel") for a, b in zip(chans[:-1], chans[1:]))
        self.heads = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in chans)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm of the latent
        h = F.leaky_relu(self.fc(z), 0.2).view(z.shape[0], -1, self.start, self.start)
        h = self.stem(h)
        out = self.heads[0](h)
        for block, head in zip(self.blocks, self.heads[1:]):
            h = block(h)
            out = F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=False) + head(h)
        return fit_to(out, self.size)


class LabelUpscalerNet(nn.Module):
    """Low-resolution label ``[B, K, s, s]`` + noise ``[B, N, S, S]`` -> label logits ``[B, K, S, S]``."""

    def __init__(
        self,
        classes: int,
        in_size: int,
        out_size: int,
        width: int = 16,
        noise_channels: int = 4,
        prior: Downsample = "area",
        encoding: str = "index",
    ):
        super().__init__()
        check_downsample(prior, "LabelUpscalerNet prior")
        self.in_size, self.out_size, self.noise_channels = in_size, out_size, noise_channels
        self.prior, self.encoding = prior, encoding
        depth = max(2, round(math.log2(out_size / in_size)) + 1)
        resolutions = [math.ceil(out_size / 2**i) for i in range(depth + 1)]
        chans = [channel_schedule(r, width) for r in resolutions]
        self.encoder = nn.ModuleList()
        cin = classes + noise_channels
        for c in chans:
            self.encoder.append(nn.Sequential(ConvNormAct(cin, c), ConvNormAct(c, c)))
            cin = c
        self.decoder = nn.ModuleList(
            nn.Sequential(ConvNormAct(chans[i + 1] + chans[i], chans[i]), ConvNormAct(chans[i], chans[i]))
            for i in reversed(range(depth))
        )
        self.noise_proj = nn.ModuleList(nn.Conv2d(noise_channels, chans[i], 1, bias=False) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], classes, 1)

    #: logit given by the upsampled input: +PRIOR inside a structure, -PRIOR outside
    PRIOR = 6.0
    #: the network's bounded correction; PRIOR * (2u - 1) outweighs it wherever the upsampled
    #: occupancy u is below 1/6 or above 5/6, so only the boundary band can change
    RESIDUAL = 4.0

    def prior_logits(self, label: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """What the input map alone says about each output pixel, as logits.

        ``area`` inputs (the coarse map is the majority class): structures stay inside and
        background outside, only the boundary band is the network's to draw. ``max`` inputs
        (a coarse structure pixel says a structure passes *somewhere* under it, as for
        max-pooled vessel maps): outside the coarse structure the output is background,
        inside it the network draws freely, so a thin vessel can be thinner than the block.
        """
        if self.prior == "area":
            return self.PRIOR * (up * 2 - 1)
        allowed = F.interpolate(label, size=(self.out_size, self.out_size), mode="nearest")
        if self.out_size % self.in_size:  # overlapping pooling windows: allow one pixel more
            allowed = F.max_pool2d(allowed, 3, stride=1, padding=1)
        logits = -self.PRIOR * (1 - allowed)
        if self.encoding == "index":  # background where the coarse map says no structure at all
            logits[:, 0] = self.PRIOR * (1 - allowed[:, 1:].amax(dim=1))
        return logits

    def forward(self, label: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(label, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        h = torch.cat([up * 2 - 1, noise], dim=1)
        skips = []
        for i, enc in enumerate(self.encoder):
            if i:
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            h = enc(h)
            skips.append(h)
        for dec, proj, skip in zip(self.decoder, self.noise_proj, reversed(skips[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            n = F.interpolate(noise, size=skip.shape[-2:], mode="area") * (noise.shape[-1] / skip.shape[-1])
            h = dec(torch.cat([h, skip], dim=1)) + proj(n)
        return self.prior_logits(label, up) + self.RESIDUAL * torch.tanh(self.head(h))


class SPADEGenerator(nn.Module):
    """Label ``[B, K, S, S]`` + noise ``[B, noise_dim]`` -> raw image ``[B, C, S, S]`` (tanh applied by the caller)."""

    def __init__(self, label_channels: int, out_channels: int, size: int, noise_dim: int = 64, width: int = 16):
        super().__init__()
        self.size, self.noise_dim = size, noise_dim
        start, levels = upsampling_plan(size, min_start=4, max_levels=5)
        resolutions = [start * 2**i for i in range(levels + 1)]
        chans = [channel_schedule(r, width) for r in resolutions]
        self.start = start
        self.fc = nn.Linear(noise_dim, chans[0] * start * start)
        self.blocks = nn.ModuleList([SPADEResBlock(chans[0], chans[0], label_channels)])
        self.blocks.extend(SPADEResBlock(a, b, label_channels) for a, b in zip(chans[:-1], chans[1:]))
        self.head = nn.Conv2d(chans[-1], out_channels, 3, padding=1)

    def forward(self, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        work = fit_to(label, self.start * 2 ** (len(self.blocks) - 1)) if label.shape[-1] != self.size else label
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)
        h = self.blocks[0](h, work)
        for block in self.blocks[1:]:
            h = block(F.interpolate(h, scale_factor=2.0, mode="nearest"), work)
        return fit_to(self.head(F.leaky_relu(h, 0.2)), self.size)
