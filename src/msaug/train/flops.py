"""Training FLOPs of a stage: one step of each kind counted, extrapolated to every step it kept.

A trainer's steps differ only by periodic extras (the GAN trainer's lazy R1 penalty runs every
``r1_every`` steps), so :class:`StepFlops` counts, with torch's ``FlopCounterMode``, one step
of each kind (one with the extra, one without; the trainer runs them after training and then
restores its state) and multiplies. What is counted
is what ``FlopCounterMode`` counts: matrix products and convolutions, forward and backward (a
multiply-add is two FLOPs); element-wise ops and the optimiser are not. Steps undone by a
roll-back are not in the total, which covers the steps the stage's weights went through.
"""

from __future__ import annotations

import contextlib
from typing import Any


class StepFlops:
    """FLOPs per training step, by kind: ``period`` > 0 means step ``s`` runs the extra when ``s % period == 0``."""

    def __init__(self, period: int = 0, ranks: int = 1):
        self.period = max(0, int(period))
        self.ranks = max(1, int(ranks))
        self.counted: dict[bool, float] = {}

    def _kind(self, step: int) -> bool:
        return self.period > 0 and step % self.period == 0

    def counting(self, step: int) -> contextlib.AbstractContextManager[Any]:
        """Wrap training step ``step`` (0-based): counts it when no step of its kind was counted yet."""
        kind = self._kind(step)
        if kind in self.counted:
            return contextlib.nullcontext()
        return _Count(self, kind)

    def steps_to_count(self) -> list[int]:
        """Step indices whose kinds cover every kind: step 0 (the extra, if any) and step 1 (a plain step)."""
        return [0] if self.period in (0, 1) else [0, 1]

    def extra_steps(self, steps: int) -> int:
        """How many of steps ``0 .. steps-1`` run the periodic extra."""
        if self.period == 0 or steps <= 0:
            return 0
        return (steps - 1) // self.period + 1

    def total(self, steps: int) -> float | None:
        """FLOPs of steps ``0 .. steps-1`` on all ranks; ``None`` when a kind those steps include was never counted."""
        extra = self.extra_steps(steps)
        plain = steps - extra
        flops = 0.0
        for kind, n in ((True, extra), (False, plain)):
            if n == 0:
                continue
            if kind not in self.counted:
                return None
            flops += n * self.counted[kind]
        return flops * self.ranks

    def per_step(self) -> float | None:
        """FLOPs of a plain step on all ranks (of the counted kind when only one was seen)."""
        value = self.counted.get(False, self.counted.get(True))
        return None if value is None else value * self.ranks


class _Count(contextlib.AbstractContextManager):
    def __init__(self, owner: StepFlops, kind: bool):
        from torch.utils.flop_counter import FlopCounterMode

        self.owner, self.kind = owner, kind
        self.mode = FlopCounterMode(display=False)

    def __enter__(self) -> _Count:
        self.mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)
        if exc[0] is None:
            self.owner.counted[self.kind] = float(self.mode.get_total_flops())
