"""DDP under torchrun: two CPU processes with gloo must end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from msaug.train import distributed


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "rank0.done").read_text() == "2 4\n" and (tmp_path / "rank1.done").read_text() == "2 4\n"
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # only rank 0 wrote the stage's files, once
    stage = tmp_path / "stage"
    assert sorted(p.name for p in (stage / "samples").iterdir()) == ["step_000003.png", "step_000004.png"]
    assert [line.split(",")[0] for line in (stage / "metrics.jsonl").read_text().splitlines()] == ['{"step": 2', '{"step": 3', '{"step": 4']


def test_single_process_defaults() -> None:
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main()
    assert distributed.init_from_env() is False  # no torchrun environment
    t = torch.tensor([2.0])
    assert distributed.all_reduce_mean(t).item() == 2.0
    assert distributed.any_rank(True, torch.device("cpu")) is True
    distributed.barrier()


def test_shutdown_ends_only_the_group_msaug_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    barriers: list[int] = []
    monkeypatch.setattr(distributed, "barrier", lambda: barriers.append(1))
    try:
        distributed.shutdown()  # the caller's group: every rank waits, the group is kept
        assert dist.is_initialized() and barriers == [1]
        monkeypatch.setattr(distributed, "_owned", True)  # as if init_from_env had created it
        distributed.shutdown()
        assert not dist.is_initialized() and distributed._owned is False
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
