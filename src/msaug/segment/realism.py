"""Image realism without downloads.

The usual FID/KID need Inception v3 weights, which msaug never downloads. So:

* With a local copy of the **FID reference network** (the TensorFlow Inception v3 of
  2015-12-05 that published FIDs use, as ported by torch-fidelity: the file
  ``weights-inception-2015-12-05-6726825d.pth``; it has 1008 logits), FID and KID are computed
  in its 2048-d pool features on 8-bit images, as published FIDs are, and reported as
  ``fid`` / ``kid``. Needs the ``torch-fidelity`` package (``pip install 'msaug[fid]'``).
* With torchvision's ImageNet ``inception_v3`` state dict instead (1000 logits), the same
  statistics are reported as ``inception_fd`` / ``inception_kid``: another network, so **not**
  comparable with published FID.
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

from msaug.errors import CheckpointError, ConfigError
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


#: logits of the FID reference network (TensorFlow's Inception v3 had 1008 classes); torchvision's has 1000
REFERENCE_LOGITS = 1008


def _inception_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a local Inception weights file (plain tensors only: ``weights_only``)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: Inception weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not an Inception v3 state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("fc.weight"), torch.Tensor):
        raise CheckpointError(f"{path}: not an Inception v3 state dict (no fc.weight tensor)")
    return state


def inception_kind(weights: str | Path) -> str:
    """``"reference"`` for the FID reference network's weights, ``"torchvision"`` for torchvision's ImageNet ones.

    Raises :class:`~msaug.errors.CheckpointError` naming the file when it is neither.
    """
    path = Path(weights)
    return _kind(path, _inception_state(path))


def _kind(path: Path, state: dict[str, torch.Tensor]) -> str:
    rows = int(state["fc.weight"].shape[0])
    if rows == REFERENCE_LOGITS:
        return "reference"
    if rows == 1000:
        return "torchvision"
    raise CheckpointError(
        f"{path}: an Inception v3 with {rows} logits; expected the FID reference network's weights "
        f"(weights-inception-2015-12-05-6726825d.pth, {REFERENCE_LOGITS} logits) or torchvision's inception_v3 (1000)"
    )


class ReferenceInceptionFeatures(nn.Module):
    """The FID reference network (torch-fidelity's port of TF Inception v3) from a local file; 2048-d pool features.

    Images go in as 8-bit RGB (grey repeated), as the PNGs published FIDs are computed on;
    torch-fidelity resizes them to 299 px the way TensorFlow 1 did.
    """

    def __init__(self, weights: str | Path):
        super().__init__()
        path = Path(weights)
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise ConfigError(f"{path}: FID with the reference network needs the torch-fidelity package: pip install 'msaug[fid]'") from None
        try:  # torch-fidelity reads the file itself (strictly: other weights do not load)
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not the FID reference network's weights ({type(exc).__name__}: {str(exc)[:200]})") from None

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images if images.dtype == torch.uint8 else (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)[0].double()


def inception_features(weights: str | Path) -> tuple[nn.Module, str]:
    """The feature network a local Inception weights file holds, and its kind (:func:`inception_kind`); the file is read once here."""
    path = Path(weights)
    state = _inception_state(path)
    kind = _kind(path, state)
    return (ReferenceInceptionFeatures(path) if kind == "reference" else InceptionFeatures(path, state)), kind


class InceptionFeatures(nn.Module):
    """torchvision's Inception v3 with weights from a local file; 2048-d pool features (not the FID network)."""

    def __init__(self, weights: str | Path, state: dict[str, torch.Tensor] | None = None):
        super().__init__()
        from torchvision.models import inception_v3

        path = Path(weights)
        state = _inception_state(path) if state is None else state  # already read by inception_features
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
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
        features, kind = inception_features(inception_weights)
        d = _distances(features, real, synthetic, real.shape[1])
        if kind == "reference":
            out.update({"fid": d["fd"], "kid": d["kid"], "kid_std": d["kid_std"]})
        else:
            out.update({"inception_fd": d["fd"], "inception_kid": d["kid"], "inception_kid_std": d["kid_std"],
                        "inception_network": "torchvision ImageNet Inception v3 (not the FID reference network: not comparable with published FID)"})
        out["inception_weights"] = str(inception_weights)
    return out
