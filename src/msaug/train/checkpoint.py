"""Resumable training checkpoints: safetensors for tensors, JSON for everything else.

Layout of ``checkpoint/``::

    state-000500.safetensors   # weights, EMA, optimizer moments, RNG states at step 500
    state.json                 # step, meta data, and the tensor file's name and sha256

Both files are written atomically and ``state.json`` last, so it is the commit marker: a run
killed mid-write leaves the previous ``state.json`` pointing at the previous, intact tensor
file. Nothing is ever unpickled, so a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from msaug.errors import CheckpointError, DataError
from msaug.io import atomic_write, read_json, write_json

META_FILE = "state.json"
FORMAT = 1


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``meta`` (must hold ``step``) as the directory's current checkpoint."""
    directory = Path(directory)
    data = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    name = f"state-{int(meta['step']):06d}.safetensors"
    atomic_write(directory / name, data)
    write_json(directory / META_FILE, {**meta, "format": FORMAT, "tensors": name, "sha256": hashlib.sha256(data).hexdigest()})
    for old in directory.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / META_FILE


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The directory's checkpoint, or ``None`` when it has none; corrupt files raise :class:`CheckpointError`."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.exists():
        return None
    try:
        meta = read_json(meta_path)
    except DataError as exc:
        raise CheckpointError(f"{exc}; delete {directory} to start the stage afresh") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "tensors" not in meta:
        raise CheckpointError(f"{meta_path}: not an msaug checkpoint of format {FORMAT}")
    path = directory / str(meta["tensors"])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file named by {meta_path} is missing") from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{path}: checksum does not match {meta_path}; the file is corrupt")
    try:
        return load_tensors(data), meta
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint part {prefix!r} does not fit this stage's networks (were its params changed?): "
            f"{first[1].strip() if len(first) > 1 else first[0]}"
        ) from None


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    for idx, entry in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint optimizer {prefix!r} does not fit this stage: {exc}") from None
