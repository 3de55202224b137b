"""A trained segmenter: the network plus what is needed to use it, saved with safetensors.

A checkpoint is a folder holding ``segmenter.safetensors`` (tensors only: no pickle, so
loading a checkpoint someone shared cannot run code) and ``segmenter.json`` (how to
rebuild the network: architecture, encoder, classes, encoding, size, training patch).

A segmenter works on squares of ``info.size`` px. With ``info.patch`` smaller than that it
was trained on random crops and predicts by Gaussian-weighted sliding windows of the patch
size (:mod:`msaug.segment.inference`), so full-resolution squares (584 px for DRIVE) are
predicted whole without shrinking thin structures away.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from msaug.errors import CheckpointError
from msaug.io import atomic_write, read_json, write_json
from msaug.label_encoding import harden_logits, probabilities
from msaug.resize import resize_image
from msaug.sample import DataSpec
from msaug.segment.inference import padded_forward, sliding_window_logits
from msaug.segment.models import input_divisor

log = logging.getLogger(__name__)
WEIGHTS_FILE = "segmenter.safetensors"
META_FILE = "segmenter.json"


@dataclass
class SegmenterInfo:
    """How a segmenter was built and what its channels mean."""

    arch: str
    encoder: str
    classes: tuple[str, ...]
    encoding: str
    channels: int
    size: int
    domain: str = "generic"
    options: dict[str, Any] = field(default_factory=dict)
    #: side of the training crops and of the prediction window; None: whole squares
    patch: int | None = None
    #: share of the window that neighbouring prediction windows overlap
    window_overlap: float = 0.25

    @classmethod
    def for_spec(cls, spec: DataSpec, arch: str, encoder: str, size: int | None = None, patch: int | None = None,
                 window_overlap: float = 0.25, **options: Any) -> SegmenterInfo:
        return cls(arch, encoder, tuple(spec.classes), spec.encoding, spec.channels, size or spec.size, spec.domain, options,
                   patch, window_overlap)

    @property
    def window(self) -> int | None:
        """The patch side when it is smaller than the square (crops and sliding windows), else None (whole squares)."""
        return self.patch if self.patch is not None and self.patch < self.size else None

    @property
    def spec(self) -> DataSpec:
        return DataSpec(self.classes, self.encoding, self.channels, self.size, self.domain)  # type: ignore[arg-type]


class Segmenter:
    """An smp network with its :class:`SegmenterInfo`; predicts at any input size."""

    def __init__(self, info: SegmenterInfo, model: nn.Module | None = None, weights: str | Path | None = None):
        self.info = info
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in info.options.items()}
        if model is None:
            from msaug.plugins import get_registries

            builder = get_registries().segmenters.get(info.arch)
            model = builder(info.channels, len(info.classes), encoder=info.encoder, weights=weights, **opts)
        self.model = model
        divisor = input_divisor(model)
        if info.window is not None and info.window % divisor:
            # it works (every window is padded to the stride, as whole squares are), but the padding is wasted compute
            log.warning("segmenter patch %d is not a multiple of the encoder's stride %d: each window is padded to %d",
                        info.window, divisor, -(-info.window // divisor) * divisor)

    @property
    def device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> Segmenter:
        self.model.to(device)
        return self

    @torch.no_grad()
    def square_logits(self, squares: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """Logits ``[B, K, S, S]`` of squares already at ``info.size`` (whole, or by sliding windows)."""
        self.model.eval()
        x = squares.to(self.device, torch.float32)
        if self.info.window is None:
            return padded_forward(self.model, x)
        return sliding_window_logits(self.model, x, self.info.window, self.info.window_overlap, batch_size)

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = 16, rescale: bool = True) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` at the images' own size: resized to ``info.size``, predicted, resized back.

        ``rescale=False``: the images already have the pixel scale of the segmenter's square
        (native-resolution patches, :attr:`msaug.DataSpec.patches`) and are predicted as they are.
        """
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(self.device, torch.float32)
            h, w = x.shape[-2:]
            y = self.square_logits(resize_image(x, self.info.size) if rescale else x, batch_size)
            if (h, w) != tuple(y.shape[-2:]):
                y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
            out.append(y.cpu())
        return torch.cat(out)

    def predict(self, images: torch.Tensor, batch_size: int = 16, rescale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probabilities, hard label maps)`` for a batch of images (``rescale``: see :meth:`logits`)."""
        logits = self.logits(images, batch_size, rescale)
        return probabilities(logits, self.info.encoding), harden_logits(logits, self.info.encoding)

    def save(self, folder: str | Path) -> Path:
        """Write the checkpoint folder atomically (weights first, then the description)."""
        from safetensors.torch import save

        folder = Path(folder)
        module = self.model.module if hasattr(self.model, "module") else self.model
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        atomic_write(folder / WEIGHTS_FILE, save(state))
        write_json(folder / META_FILE, {**asdict(self.info), "classes": list(self.info.classes)})
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> Segmenter:
        """Rebuild a saved segmenter (no network access; the encoder is built empty)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        meta = read_json(folder / META_FILE)
        try:
            info = SegmenterInfo(**{**meta, "classes": tuple(meta["classes"])})
        except (TypeError, KeyError) as exc:
            raise CheckpointError(f"{folder / META_FILE}: not a segmenter description ({exc})") from None
        segmenter = cls(info)
        try:
            state = load_file(str(folder / WEIGHTS_FILE))
        except FileNotFoundError:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: file not found") from None
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: cannot read ({exc})") from None
        try:
            segmenter.model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{folder / WEIGHTS_FILE}: weights do not fit {info.arch}/{info.encoder}: {exc}") from None
        return segmenter.to(device)

    def __repr__(self) -> str:
        window = f", {self.info.window} px windows" if self.info.window is not None else ""
        return f"Segmenter({self.info.arch}/{self.info.encoder}, {len(self.info.classes)} {self.info.encoding} classes, {self.info.size} px{window})"

