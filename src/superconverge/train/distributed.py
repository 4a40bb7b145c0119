"""Data-parallel training through torchrun: one process per device, gradients averaged by DDP.

Launch with ``torchrun --nproc_per_node N -m superconverge train ...``; every helper
here is a no-op in a single process. Each global batch is split evenly across ranks,
so a run on N processes takes the same optimizer steps as one process would.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import nn


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world() -> int:
    return td.get_world_size() if active() else 1


def shard() -> tuple[int, int]:
    """(rank, world size) for splitting each batch."""
    return rank(), world()


def setup_from_env() -> bool:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU); False when not launched so."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or active():
        return active()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    td.init_process_group(backend)
    return True


def wrap(model: nn.Module) -> nn.Module:
    """The model wrapped in DistributedDataParallel when running under torchrun."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum a small CPU tensor of counters over all ranks."""
    if not active():
        return x
    y = x.clone().to("cuda" if td.get_backend() == "nccl" else "cpu")
    td.all_reduce(y)
    return y.cpu()
