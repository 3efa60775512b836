"""Multi-process data parallelism through ``torch.distributed`` (gloo on CPU, NCCL on CUDA), launched by torchrun.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_distributed` reads them and joins the process group. Without them (a plain
``python script.py``) everything here degrades to the single-process case: rank 0 of 1, no communication.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kexue.errors import ConfigError


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset).

    Raises:
        ConfigError: if ``WORLD_SIZE`` is not a positive integer.
    """
    raw = os.environ.get("WORLD_SIZE", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"environment variable WORLD_SIZE: expected a positive integer, got {raw!r}")
    return int(raw)


def init_distributed(device_type: str = "cpu") -> bool:
    """Join the process group described by torchrun's environment variables, if there is one.

    Args:
        device_type: ``"cpu"`` (gloo backend) or ``"cuda"`` (NCCL backend).

    Returns:
        ``True`` if this process is part of a multi-process group (already initialised or joined now),
        ``False`` for a single process.

    Raises:
        ConfigError: if ``WORLD_SIZE`` > 1 but ``RANK``, ``MASTER_ADDR`` or ``MASTER_PORT`` is missing.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if env_world_size() == 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE > 1 but environment variables {missing} are unset; launch with torchrun")
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """This process's rank on its node, from ``LOCAL_RANK`` (0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Whether this is rank 0 (the process that writes files and shows progress)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for all processes (no-op for a single process)."""
    if is_distributed():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` when distributed, else return it unchanged.

    DDP broadcasts rank 0's parameters and buffers at construction and averages gradients over ranks in
    ``backward``. Parameters with ``requires_grad=False`` (frozen backbones, LoRA) are ignored by DDP;
    ``find_unused_parameters=True`` is needed when trainable parameters can go without a gradient in a step.
    """
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def mean_over_ranks(value: float) -> float:
    """Average a Python float over all ranks (identity for a single process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def sum_over_ranks(value: float) -> float:
    """Sum a Python number over all ranks (identity for a single process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s (picklable) object, on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's (picklable) object, ordered by rank, on every rank."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
