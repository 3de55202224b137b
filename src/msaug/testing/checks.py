"""Assertions a stage's outputs and training pairs must satisfy, usable in any test.

They raise :class:`AssertionError` with a message that names the modality, what was
expected and what came out, so a failing contract test says what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pydantic import ValidationError

from msaug.errors import MsaugError
from msaug.modality import Image, Label, Modality, Noise
from msaug.sample import Dataset
from msaug.stage import Pairs, Stage, StageParams


def modality_shape(modality: Modality) -> tuple[int, ...]:
    """The shape of one sample of ``modality`` (without the batch dimension)."""
    if isinstance(modality, Noise):
        return (modality.dim,)
    if isinstance(modality, Label):
        return (modality.channels, modality.size, modality.size)
    if isinstance(modality, Image):
        return (modality.channels, modality.size, modality.size)
    raise TypeError(f"no tensor layout is defined for {modality!r}")


def check_output(tensor: Any, modality: Modality, batch: int | None = None, what: str = "output") -> None:
    """Assert that ``tensor`` is a batch of ``modality``: type, dtype, shape, finiteness and values.

    Labels must be hard 0/1 maps; with the ``index`` encoding exactly one channel is 1 at
    every pixel. Images must lie in [0, 1].
    """
    assert isinstance(tensor, torch.Tensor), f"{what}: expected a torch.Tensor for {modality}, got {type(tensor).__name__}"
    assert tensor.dtype == torch.float32, f"{what}: {modality} must be float32, got {tensor.dtype}"
    expected = modality_shape(modality)
    assert tensor.dim() == len(expected) + 1 and tuple(tensor.shape[1:]) == expected, (
        f"{what}: {modality} expects shape [B, {', '.join(map(str, expected))}], got {list(tensor.shape)}"
    )
    if batch is not None:
        assert tensor.shape[0] == batch, f"{what}: expected a batch of {batch}, got {tensor.shape[0]}"
    assert bool(torch.isfinite(tensor).all()), f"{what}: {modality} holds NaN or infinite values"
    if isinstance(modality, Label):
        values = torch.unique(tensor.detach().cpu()).tolist()
        assert set(values) <= {0.0, 1.0}, f"{what}: {modality} must be hard 0/1 label maps, found values {values[:8]}"
        if modality.encoding == "index":
            per_pixel = tensor.sum(dim=1)
            bad = int((per_pixel != 1).sum())
            assert bad == 0, (
                f"{what}: {modality} is one-hot (index encoding) but {bad} pixels have "
                f"{sorted(set(per_pixel.unique().tolist()))} classes set instead of exactly 1"
            )
    elif isinstance(modality, Image):
        low, high = float(tensor.min()), float(tensor.max())
        assert low >= 0.0 and high <= 1.0, f"{what}: {modality} values must lie in [0, 1], got [{low:.4g}, {high:.4g}]"


def check_outputs(result: Any, stage: Stage, batch: int) -> tuple[torch.Tensor, ...]:
    """Assert that a ``generate`` result matches every modality ``stage`` declares; returns it as a tuple."""
    outputs = stage.outputs
    got = result if isinstance(result, tuple) else (result,)
    if isinstance(stage.output, tuple):
        assert isinstance(result, tuple), f"{stage!r} declares {len(outputs)} outputs, so generate() must return a tuple"
    assert len(got) == len(outputs), f"{stage!r} declares {len(outputs)} outputs, generate() returned {len(got)}"
    for i, (tensor, modality) in enumerate(zip(got, outputs)):
        check_output(tensor, modality, batch, what=f"{stage.name or type(stage).__name__} output {i}")
    return tuple(got)


def check_rejects_unknown_params(cls: type[Stage], params: dict[str, Any], spec: Any) -> None:
    """Assert that ``cls`` refuses a misspelt param instead of silently ignoring it."""
    assert issubclass(cls.Params, StageParams), f"{cls.__name__}.Params must subclass msaug.StageParams"
    assert cls.Params.model_config.get("extra") == "forbid", f"{cls.__name__}.Params must keep extra='forbid'"
    key = "no_such_param_in_any_stage"
    try:
        cls({**params, key: 1}, spec)
    except (ValidationError, ValueError, MsaugError) as exc:  # pydantic's ValidationError is a ValueError
        assert key in str(exc), f"{cls.__name__} rejected an unknown param without naming it: {exc}"
    else:
        raise AssertionError(f"{cls.__name__} accepted the unknown param {key!r}; its Params must forbid extra keys")


def stage_pairs(stage: Stage, samples: Sequence[Any] | Dataset, has_roi: bool = False) -> Pairs:
    """Training pairs for ``stage``: its input and outputs viewed from real samples, as the runner makes them."""
    samples = [samples[i] for i in range(len(samples))]
    inputs = None if isinstance(stage.input, Noise) else torch.stack([stage.input.view(s) for s in samples])
    targets = tuple(torch.stack([m.view(s) for s in samples]) for m in stage.outputs)
    roi = None
    if has_roi and all(s.roi is not None for s in samples):
        roi = torch.stack([torch.as_tensor(s.roi, dtype=torch.bool) for s in samples])
    return Pairs(stage.input, stage.output, inputs, targets if len(targets) > 1 else targets[0], [s.id for s in samples], roi)
