"""Process-group set-up for ``torchrun``: gloo on CPU, NCCL on GPUs; a no-op in one process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun describes (env://); returns (rank, world_size).

    NCCL when the processes train on GPUs (``device`` "cuda..."), gloo on the CPU.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if not launched_by_torchrun():
        return 0, 1
    backend = "nccl" if str(device or "cpu").startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def local_device(device: str | None) -> str:
    """Where this process trains: "cuda" becomes its own GPU (LOCAL_RANK) under torchrun."""
    device = str(device or "cpu")
    if not device.startswith("cuda"):
        return device
    if device == "cuda" and launched_by_torchrun():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    torch.cuda.set_device(torch.device(device))
    return device


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def gather_objects(obj) -> list:
    """``obj`` of every rank, rank 0 first (every rank must call this); ``[obj]`` in one process."""
    if dist.is_available() and dist.is_initialized():
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
