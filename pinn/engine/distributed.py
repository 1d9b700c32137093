"""Process-group set-up for DDP under ``torchrun`` (or a single process without it).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
when ``WORLD_SIZE`` > 1 the default process group is created with gloo on CPU or NCCL on
CUDA, and each rank uses ``cuda:LOCAL_RANK`` when on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pinn.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: ``device``, its ``rank`` and the ``world_size``."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` picks CUDA when available, else CPU; checks CUDA requests."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a valid torch device; use cpu, cuda, "
                          "cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; "
                          "use --device cpu")
    return device


def setup(device: str | torch.device | None) -> Runtime:
    """Join the ``torchrun`` process group if there is one; returns this process's runtime."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world_size <= 1:
        return Runtime(device=base)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if base.type == "cuda":
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return Runtime(device=base, rank=rank, world_size=world_size, owns_process_group=owns)


def teardown(runtime: Runtime) -> None:
    """Leave the process group if :func:`setup` created it."""
    if runtime.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum a tensor over all processes (identity in a single process)."""
    if runtime.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def union_over_ranks(names: list[str], runtime: Runtime) -> list[str]:
    """The sorted union of every process's ``names`` (this process's names, sorted, alone)."""
    if not runtime.distributed:
        return sorted(names)
    gathered: list[list[str] | None] = [None] * runtime.world_size
    dist.all_gather_object(gathered, list(names))
    return sorted(set().union(*gathered))


def agree(flag: bool, runtime: Runtime, any_rank: bool = False) -> bool:
    """Make every rank take the same branch: all must be True (or, with ``any_rank``, one)."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([0.0 if flag else 1.0] if not any_rank else [1.0 if flag else 0.0])
    total = all_reduce_sum(value.to(runtime.device), runtime).item()
    return total > 0 if any_rank else total == 0


def reduce_sums(loop: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """The epoch's running sums over all ranks (float64). A rank that has seen no items (an
    empty share, or a resumed non-main rank) knows no metric names, so the names are agreed
    first: all-reducing tensors of different lengths would hang or mix up the values."""
    names = union_over_ranks(list(loop["sums"]), runtime)
    values = torch.tensor([loop["sums"].get(n, 0.0) for n in names] + [loop["items"]],
                          dtype=torch.float64)
    if runtime.distributed:
        values = all_reduce_sum(values.to(runtime.device), runtime).cpu()
    return {"sums": dict(zip(names, values[:-1].tolist())), "items": float(values[-1])}
