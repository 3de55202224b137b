"""Segmentation networks from segmentation-models-pytorch, built without any download.

Every smp architecture is offered under its lower-case name (``unet``, ``unetplusplus``,
``deeplabv3plus``...), with any smp encoder or any timm encoder through the ``tu-``
prefix. Networks are always built with ``encoder_weights=None``; pretrained weights come
only from a local file the user names (:func:`load_local_weights`), so nothing touches the
network, on a laptop or inside a hospital.

The head follows the label encoding: ``index`` label maps (mutually exclusive classes)
are trained with a softmax over the classes, ``multilabel`` maps (overlapping structures,
such as clavicles over lungs) with one sigmoid per channel. :func:`probabilities` applies
the matching activation so callers never have to remember which.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from msaug.errors import CheckpointError, ConfigError, UnknownNameError, did_you_mean

log = logging.getLogger(__name__)

#: decoder widths used unless the caller asks otherwise: half of smp's defaults, which
#: costs little accuracy on small medical datasets and trains about twice as fast on CPU
LIGHT_DECODER_CHANNELS = (128, 64, 32, 16, 16)
_DECODER_CHANNEL_ARCHS = {"unet", "unetplusplus", "manet"}


def _smp() -> Any:
    """segmentation-models-pytorch, imported without the deprecation notice its timm import prints.

    timm's model registry decorates one model (hrnet) with ``torch.jit.interface``, which torch
    2.14 deprecates with a ``FutureWarning`` at import; every msaug command that trains a
    segmenter showed it. Only that notice is hidden, and only while smp is imported.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.interface` is deprecated", category=FutureWarning)
        import segmentation_models_pytorch as smp
    return smp


def architectures() -> dict[str, type[nn.Module]]:
    """smp's architectures by lower-case name (``unet`` -> ``smp.Unet``)."""
    smp = _smp()

    return dict(smp.MODEL_ARCHITECTURES_MAPPING)


def build_segmenter(
    arch: str,
    in_channels: int,
    classes: int,
    encoder: str = "tu-resnet18",
    weights: str | Path | None = None,
    **options: Any,
) -> nn.Module:
    """Build an smp network mapping ``[B, in_channels, H, W]`` to ``[B, classes, H, W]`` logits.

    ``weights`` names a local file (safetensors, or a PyTorch state dict) with encoder or
    whole-network weights; see :func:`load_local_weights`. Remaining ``options`` go to
    the smp constructor (``decoder_channels``, ``encoder_depth``...).
    """
    smp = _smp()

    archs = architectures()
    key = arch.lower()
    if key not in archs:
        raise UnknownNameError(f"unknown segmenter architecture {arch!r}.{did_you_mean(key, archs)}")
    if key in _DECODER_CHANNEL_ARCHS and "decoder_channels" not in options:
        options["decoder_channels"] = LIGHT_DECODER_CHANNELS
    try:
        model = smp.create_model(
            key, encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes, **options
        )
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        message = str(exc.args[0]) if exc.args else str(exc)
        raise ConfigError(f"cannot build segmenter {arch!r} with encoder {encoder!r}: {message}") from None
    if weights is not None:
        load_local_weights(model, weights)
    return model


def check_encoder(encoder: str) -> None:
    """Raise :class:`UnknownNameError`, with the closest valid names, when smp has no encoder ``encoder``.

    Looks the name up in smp's and timm's registries only: nothing is built or downloaded.
    """
    smp = _smp()

    if encoder.startswith("tu-"):
        import timm

        name = encoder[3:]
        if name and timm.is_model(name):
            return
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.8)
        hint = f" Did you mean {', '.join(repr('tu-' + c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown encoder {encoder!r}: timm has no model {name!r}.{hint} Valid names: tu- followed by a timm model name "
            "(python -c 'import timm; print(timm.list_models())'), or one of smp's own encoders (e.g. resnet34)"
        )
    names = smp.encoders.get_encoder_names()
    if encoder not in names:
        raise UnknownNameError(f"unknown encoder {encoder!r}.{did_you_mean(encoder, names)} Any timm model works with the tu- prefix, e.g. 'tu-resnet18'.")


def input_divisor(model: nn.Module) -> int:
    """The factor input sides must be divisible by (the encoder's output stride)."""
    encoder = getattr(model, "encoder", None)
    if encoder is None:  # not an smp network: nothing known about its constraints
        return 1
    return int(getattr(encoder, "output_stride", 32) or 32)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or unsafe file: a user error, not a bug
        raise CheckpointError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return state


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@dataclass
class WeightsMatch:
    """Which part of a network a weights file fits (see :func:`load_local_weights`)."""

    target_name: str  # network, encoder or backbone
    target: nn.Module
    tensors: dict[str, torch.Tensor]
    total: int
    skipped: int


def match_local_weights(model: nn.Module, path: str | Path, min_share: float = 0.5) -> WeightsMatch:
    """Read a local weights file and find the part of ``model`` it fits, without loading anything into it.

    Only names and shapes of ``model``'s tensors are used, so ``model`` may live on the meta
    device: ``msaug pipeline check`` checks a weights file this way before any training.
    Raises :class:`CheckpointError` when the file is missing, unreadable or fits too little.
    """
    path = Path(path)
    state = _read_state(path)
    targets: list[tuple[str, nn.Module]] = [("network", model)]
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        targets.append(("encoder", encoder))
        if isinstance(getattr(encoder, "model", None), nn.Module):
            targets.append(("backbone", encoder.model))
    best: tuple[int, str, nn.Module, dict[str, torch.Tensor], int] | None = None
    for name, target in targets:
        own = target.state_dict()
        for prefix in ("", "encoder.", "model.", "encoder.model.", "module."):
            candidate = _strip(state, prefix) if prefix else state
            matched = {k: v for k, v in candidate.items() if k in own and own[k].shape == v.shape}
            skipped = sum(1 for k, v in candidate.items() if k in own and own[k].shape != v.shape)
            if best is None or len(matched) > best[0]:
                best = (len(matched), name, target, matched, skipped)
    assert best is not None
    count, name, target, matched, skipped = best
    total = len(target.state_dict())
    if count == 0 or count < min_share * total:
        raise CheckpointError(
            f"{path}: only {count} of {total} tensors match the {name} of this segmenter by name and shape; "
            "is it for another architecture or encoder?"
        )
    return WeightsMatch(name, target, matched, total, skipped)


def load_local_weights(model: nn.Module, path: str | Path, min_share: float = 0.5) -> dict[str, int]:
    """Load weights from a local file into the whole network or its encoder.

    The file may hold a full segmenter state dict, an smp encoder state dict, or a plain
    timm/torchvision backbone (``conv1.weight``...; classifier keys are ignored). The
    target that matches most tensors by name and shape is used; tensors whose shapes
    differ (a 3-channel stem for a 1-channel X-ray) are skipped and counted. At least
    ``min_share`` of the target's tensors must load, otherwise the file is rejected:
    silently training from scratch with a "pretrained" label would mislead.
    """
    match = match_local_weights(model, path, min_share)
    match.target.load_state_dict(match.tensors, strict=False)
    count = len(match.tensors)
    log.info("loaded %d/%d %s tensors from %s (%d skipped: shape differs)", count, match.total, match.target_name, path, match.skipped)
    return {"loaded": count, "total": match.total, "skipped": match.skipped}
