"""DistributedDataParallel plumbing for runs under ``torchrun`` (single- or multi-node).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` turns them into a process group (gloo on CPU, NCCL
on CUDA). Without those variables everything here degrades to a single process, so the
same code runs with and without torchrun.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


_owned = False  # whether init_from_env created the process group (and shutdown may end it)


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; True when running distributed."""
    global _owned
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    _owned = True
    return dist.get_world_size() > 1


def shutdown() -> None:
    """Wait for every rank, then end the process group if :func:`init_from_env` created it.

    Without it each rank closes its sockets at interpreter exit, whenever it gets there.
    A group created by the caller is kept (the barrier still holds every rank here).
    """
    global _owned
    barrier()
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Only the main process (rank 0) writes checkpoints, sample grids and metrics."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def local_device() -> torch.device:
    """This process's GPU under torchrun (``cuda:LOCAL_RANK``), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all ranks (in place when distributed); identity in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (keeps ranks' decisions in step)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
