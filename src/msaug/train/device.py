"""Device selection and mixed precision policy."""

from __future__ import annotations

import torch

from msaug.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"``/``"cuda:N"`` without a GPU is an error."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} was asked for but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(spec)
    raise ConfigError(f"unknown device {spec!r}; valid: {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 autocast on CUDA GPUs that support it; ``None`` (full precision) everywhere else.

    fp16 would need loss scaling for two optimizers and an R1 double backward; bf16 has the
    range of fp32 and needs none, so older GPUs simply train in fp32.
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def use_channels_last(device: torch.device) -> bool:
    """``channels_last`` speeds up convolutions with tensor cores; on CPU it mostly adds copies."""
    return device.type == "cuda"


def generation_memory_format(device: torch.device) -> torch.memory_format:
    """The layout generators run in when generating pairs (no gradients).

    ``channels_last`` on CUDA (tensor cores) and on CPU too: there oneDNN's inference
    convolutions run the X-ray chain's upscaler and translator about a third and a fifth
    faster in it (docs/benchmarks.md, "CPU generation"). Training keeps
    :func:`use_channels_last`.
    """
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
