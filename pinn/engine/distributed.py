"""Process-group set-up for DDP under ``torchrun`` (or a single process without it).

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
when ``WORLD_SIZE`` > 1 the default process group is created with gloo on CPU or NCCL on
CUDA, and each rank uses ``cuda:LOCAL_RANK`` when on CUDA.

Watchdog: the process group is created with a timeout (``PINN_DDP_TIMEOUT_S`` seconds,
default 300), which bounds joining the group and every collective operation (gloo raises when
it passes; NCCL's watchdog aborts). A process whose partners stop answering (one crashed, is
stuck, or took another branch and skipped a collective) therefore stops with one
:class:`CollectiveFailure` line (:func:`collective_failure`) instead of waiting for ever. Any one process may work alone (checkpoint, preview) for at most that long.
"""

from __future__ import annotations

import datetime
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pinn.errors import ConfigError, TrainingError

#: The environment variable that sets the watchdog's timeout, in seconds.
TIMEOUT_ENV = "PINN_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0


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


def timeout_s() -> float:
    """The watchdog's timeout: ``PINN_DDP_TIMEOUT_S`` seconds, default 300.

    Raises:
        ConfigError: the variable is set but not a positive number.
    """
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{TIMEOUT_ENV} is {raw!r}; set it to a positive number of seconds "
                          f"(default {DEFAULT_TIMEOUT_S:g}) or unset it")
    return value


def setup(device: str | torch.device | None) -> Runtime:
    """Join the ``torchrun`` process group if there is one; returns this process's runtime.

    Raises:
        TrainingError: not every process joined within the watchdog's timeout.
        ConfigError: a bad device or ``PINN_DDP_TIMEOUT_S``.
    """
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
        limit = timeout_s()
        try:
            dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo",
                                    timeout=datetime.timedelta(seconds=limit))
        except dist.DistError as exc:
            raise TrainingError(
                f"process {rank} of {world_size} could not join the others within {limit:g} s "
                f"({_first_line(exc)}); check that all {world_size} were started with the same "
                f"MASTER_ADDR and a free MASTER_PORT (torchrun --master-port P), or raise "
                f"{TIMEOUT_ENV}") from None
    return Runtime(device=base, rank=rank, world_size=world_size, owns_process_group=owns)


class CollectiveFailure(TrainingError):
    """Another process of a distributed run stopped answering or failed. This process's
    communication threads are left waiting on a dead connection: it should exit (the ``pinn``
    command exits at once, without the interpreter's clean-up, which can abort in them)."""


def collective_failure(exc: BaseException, runtime: Runtime) -> CollectiveFailure | None:
    """The one-line error for a collective operation that failed because the other processes
    stopped answering (the watchdog's timeout passed, or one of them is gone), or None when
    ``exc`` is something else (or this is a single process)."""
    if not runtime.distributed:
        return None
    text = _first_line(exc)
    if not (isinstance(exc, dist.DistError) or "gloo" in str(exc).lower()):
        return None
    who = f"process {runtime.rank} of {runtime.world_size}"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return CollectiveFailure(
            f"{who} waited {timeout_s():g} s in a collective operation that another process "
            f"never joined ({text}); one of them is stuck, stopped early or skipped it, see its "
            f"output. Stopped instead of hanging; if a process legitimately works alone that "
            f"long, raise {TIMEOUT_ENV}")
    return CollectiveFailure(f"{who}: a collective operation failed ({text}); another process "
                         "failed, was stopped or called a different operation, see its output")


def _first_line(exc: BaseException) -> str:
    """The gist of a torch.distributed error: its first line without gloo's source location
    (``[.../pair.cc:537] ``) and generic advice."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\]\s*", "", lines[0].strip()) if lines else ""
    text = text.split(" This is typically caused")[0].rstrip(" .")
    return text or type(exc).__name__


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


def from_main(value: float, runtime: Runtime) -> float:
    """The main process's ``value`` on every rank (``value`` itself in a single process)."""
    if not runtime.distributed:
        return value
    mine = torch.tensor([value if runtime.is_main else 0.0], dtype=torch.float64)
    return float(all_reduce_sum(mine.to(runtime.device), runtime).item())


def reduce_sums(sums: dict[str, float], items: float,
                runtime: Runtime) -> tuple[dict[str, float], float]:
    """Running sums and item counts over all ranks (float64): ``(sums, items)``. A rank that
    has seen no items (an empty share, or a resumed non-main rank) knows no metric names, so
    the names are agreed first: all-reducing tensors of different lengths would hang or mix
    up the values."""
    names = union_over_ranks(list(sums), runtime)
    values = torch.tensor([sums.get(n, 0.0) for n in names] + [items], dtype=torch.float64)
    if runtime.distributed:
        values = all_reduce_sum(values.to(runtime.device), runtime).cpu()
    return dict(zip(names, values[:-1].tolist())), float(values[-1])
