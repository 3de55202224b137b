"""StepFlops: training FLOPs from one counted step per kind."""

from __future__ import annotations

import torch

from msaug.train.flops import StepFlops


def _matmul_step(n: int) -> None:
    a = torch.ones(n, n)
    a @ a


def test_counts_the_first_step_of_each_kind_and_extrapolates() -> None:
    flops = StepFlops(period=3)
    for step in range(7):
        with flops.counting(step):
            _matmul_step(8 if step % 3 == 0 else 4)  # the periodic step is the bigger one
    assert flops.counted == {True: 2 * 8**3, False: 2 * 4**3}
    # steps 0, 3, 6 of 0..6 run the extra
    assert flops.extra_steps(7) == 3 and flops.extra_steps(1) == 1 and flops.extra_steps(0) == 0
    assert flops.total(7) == 3 * 2 * 8**3 + 4 * 2 * 4**3
    assert flops.per_step() == 2 * 4**3


def test_without_a_period_every_step_is_alike_and_ranks_multiply() -> None:
    flops = StepFlops(period=0, ranks=2)
    for step in range(3):
        with flops.counting(step):
            _matmul_step(4)
    assert flops.total(10) == 10 * 2 * 4**3 * 2 and flops.per_step() == 2 * 4**3 * 2


def test_a_kind_never_counted_makes_the_total_unknown() -> None:
    flops = StepFlops(period=4)
    with flops.counting(1):  # a resumed fit starting at a plain step, stopped after one step
        _matmul_step(4)
    assert flops.total(1) is None  # steps 0..0: step 0 runs the extra, never counted
    assert flops.total(0) == 0.0
    assert flops.per_step() == 2 * 4**3


def test_the_steps_to_count_cover_each_kind() -> None:
    assert StepFlops(period=0).steps_to_count() == [0]
    assert StepFlops(period=1).steps_to_count() == [0]  # every step runs the extra
    assert StepFlops(period=4).steps_to_count() == [0, 1]
