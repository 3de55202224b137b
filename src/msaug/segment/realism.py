"""Image realism without downloads.

The usual FID/KID need Inception v3 weights, which msaug never downloads. So:

* With a local Inception v3 weights file (torchvision's ``inception_v3`` state dict),
  FID and KID are computed in its 2048-d pool features and reported as ``fid`` / ``kid``.
* Always (when a segmenter trained on the real data is available): the Fréchet distance
  and KID in the feature space of *that segmenter's encoder* (global-average-pooled
  deepest features), reported as ``encoder_fd`` / ``encoder_kid`` together with the
  encoder's name. These are not FID: values depend on the encoder and the data and are
  only comparable between runs that use the same reference segmenter.

torchmetrics does the statistics (``FrechetInceptionDistance`` / ``KernelInceptionDistance``
with a custom feature module).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from msaug.errors import CheckpointError
from msaug.resize import resize_image
from msaug.segment.segmenter import Segmenter


class EncoderFeatures(nn.Module):
    """A segmenter's encoder as a feature extractor: ``[B, C, H, W]`` images to ``[B, F]``."""

    def __init__(self, segmenter: Segmenter):
        super().__init__()
        self.encoder = segmenter.model.encoder
        self.size = segmenter.info.size
        self.channels = segmenter.info.channels

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = resize_image(x, self.size)
        self.encoder.eval()
        return self.encoder(x.to(next(self.encoder.parameters()).device))[-1].mean(dim=(2, 3)).double().cpu()


class InceptionFeatures(nn.Module):
    """torchvision's Inception v3 with weights from a local file; 2048-d pool features."""

    def __init__(self, weights: str | Path):
        super().__init__()
        from torchvision.models import inception_v3

        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"{path}: Inception weights file not found")
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
            missing, _ = net.load_state_dict(state, strict=False)
        except Exception as exc:
            raise CheckpointError(f"{path}: not a torchvision Inception v3 state dict ({type(exc).__name__}: {exc})") from None
        if any(not k.startswith(("AuxLogits.", "fc.")) for k in missing):
            raise CheckpointError(f"{path}: not a torchvision Inception v3 state dict ({len(missing)} tensors missing)")
        net.fc = nn.Identity()
        net.eval()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std).double()


def _distances(features: nn.Module, real: torch.Tensor, synthetic: torch.Tensor, channels: int, batch_size: int = 32) -> dict[str, float]:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    subset = min(len(real), len(synthetic), 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fd = FrechetInceptionDistance(feature=features, input_img_size=(channels, 64, 64))
        kid = KernelInceptionDistance(feature=features, subset_size=subset, subsets=50)
        for images, is_real in ((real, True), (synthetic, False)):
            for start in range(0, len(images), batch_size):
                batch = images[start : start + batch_size]
                fd.update(batch, real=is_real)
                kid.update(batch, real=is_real)
        kid_mean, kid_std = kid.compute()
        return {"fd": float(fd.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def image_realism(
    real: torch.Tensor, synthetic: torch.Tensor, segmenter: Segmenter | None, inception_weights: str | Path | None = None
) -> dict[str, Any]:
    """Realism of ``[N,C,H,W]`` synthetic images against real ones (see module docstring)."""
    if len(real) < 2 or len(synthetic) < 2:
        return {"skipped": "needs at least 2 real and 2 synthetic images"}
    out: dict[str, Any] = {}
    if segmenter is not None:
        d = _distances(EncoderFeatures(segmenter), real, synthetic, segmenter.info.channels)
        out.update(
            {
                "encoder_fd": d["fd"],
                "encoder_kid": d["kid"],
                "encoder_kid_std": d["kid_std"],
                "feature_space": f"encoder {segmenter.info.encoder} of the segmenter trained on real data (not Inception: not FID)",
            }
        )
    if inception_weights is not None:
        d = _distances(InceptionFeatures(inception_weights), real, synthetic, real.shape[1])
        out.update({"fid": d["fd"], "kid": d["kid"], "kid_std": d["kid_std"], "inception_weights": str(inception_weights)})
    return out
