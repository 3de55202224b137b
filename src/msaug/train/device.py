"""Device selection and mixed precision policy."""

from __future__ import annotations

import ctypes
import os

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


#: how msaug's commands set up the C heap of their process: ``keep`` (the default) or ``system``
HOST_ALLOCATOR_ENV = "MSAUG_HOST_ALLOCATOR"
HOST_ALLOCATOR_CHOICES = ("keep", "system")
#: glibc ``mallopt`` parameters (``<malloc.h>``)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: the heap is handed back to the system only when more than this much is free at its top
_KEEP_BYTES = 2**31 - 1
#: environment variables by which a user already chose how glibc's heap or another allocator behaves
_USER_ALLOCATOR_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def tune_host_allocator() -> str:
    """Keep freed host memory in the process instead of handing it back to the system; says what was done.

    PyTorch's CPU tensors come from ``malloc``. glibc serves every block above its mmap
    threshold (at most 32 MiB; a batch of 16 feature maps of 64 channels at 128 px is 64 MiB)
    with a fresh ``mmap`` and unmaps it on free, so every training step and every generated
    batch faults its activations in again, page by page, and the kernel zeroes each page: the
    X-ray chain took 14,000-53,000 page faults per batch of 16 at generation. With mmap off and
    the heap kept (``mallopt``), freed blocks are reused: there the median fell to none per batch
    (docs/benchmarks.md, "CPU generation"). The cost: the process keeps the heap it reached
    until it exits (one job per msaug command), and glibc may leave a freed block unused when an
    aligned request of the same size does not fit it, so the heap can grow past the peak of live
    tensors; the main job's peak RSS is measured with and without this in docs/benchmarks.md.

    Only glibc's allocator is tuned. Nothing is changed when ``MSAUG_HOST_ALLOCATOR=system``,
    when the environment already sets glibc's ``MALLOC_*`` variables or ``GLIBC_TUNABLES``, or
    when ``LD_PRELOAD`` brings another allocator (jemalloc, tcmalloc, mimalloc). msaug's command
    line calls this once at start; a Python program that imports msaug keeps its own heap.
    """
    choice = os.environ.get(HOST_ALLOCATOR_ENV, "keep").strip().lower() or "keep"
    if choice not in HOST_ALLOCATOR_CHOICES:
        raise ConfigError(
            f"{HOST_ALLOCATOR_ENV}={os.environ[HOST_ALLOCATOR_ENV]!r}: valid values are "
            f"{' or '.join(HOST_ALLOCATOR_CHOICES)} (keep: reuse freed memory, the default; system: glibc's defaults)"
        )
    if choice == "system":
        return f"system ({HOST_ALLOCATOR_ENV}=system)"
    chosen = [name for name in _USER_ALLOCATOR_ENV if name in os.environ]
    if chosen:
        return f"system (the environment sets {', '.join(chosen)})"
    preload = os.environ.get("LD_PRELOAD", "")
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "system (LD_PRELOAD brings another allocator)"
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "system (not glibc)"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) != 1:
        return "system (glibc refused the settings)"
    return "keep"
