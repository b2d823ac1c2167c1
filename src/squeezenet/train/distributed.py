"""Multi-process training under ``torchrun``: process-group set-up and small collectives.

``torchrun --nproc_per_node=N -m squeezenet train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
:func:`setup` then joins the group (gloo on CPU, nccl on GPU). Without those variables every
helper here is a no-op for a single process.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 without it)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group if launched by torchrun; returns (rank, world_size)."""
    rank, world, local = env_world()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(device.index if device.index is not None else local)
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce(values: list[float], op: str = "sum", device: torch.device | str | None = None) -> list[float]:
    """Sum (or max) a few numbers over all processes (on the GPU under the nccl backend,
    which reduces nothing else)."""
    if not active():
        return list(values)
    if device is None:
        device = (torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl"
                  else torch.device("cpu"))
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_object(obj: Any) -> list[Any]:
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if active():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
