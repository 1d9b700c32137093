"""What one training session works with, once set up: :class:`Session`.

A run may take several sessions (it is interrupted and resumed); a session holds what does
not go into the checkpoint (the wrapped modules, the data, the loggers, the clock) beside the
live model and optimiser. :func:`set_up` builds it in the order the loop needs: device and
process group are given, then the model is placed and wrapped (DDP, compile), then the
optimiser and the precision are chosen.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pinn.config import TrainingConfig
from pinn.engine import hooks
from pinn.engine.distributed import Runtime, from_main
from pinn.engine.optim import keras_adam_eps
from pinn.engine.precision import autocast_dtype
from pinn.engine.progress import ConsoleProgress, TensorBoard
from pinn.engine.resume import Snapshot, checkpoint_file, save_run
from pinn.engine.schedule import cosine_lr
from pinn.engine.state import TrainingState
from pinn.errors import ConfigError

#: ``loss_fn(model, batch) -> (loss, metrics)``: a scalar loss (mean over the batch's items)
#: and scalar metrics averaged the same way.
LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class Session:
    """The live objects of one training session (see the module docstring)."""

    config: TrainingConfig
    runtime: Runtime
    model: nn.Module  # the unwrapped module: saved, restored, previewed
    wrapped: nn.Module  # what trains (DDP and/or compiled)
    evaluator: nn.Module  # what validates (compiled, never DDP)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: torch.dtype | None
    loss_fn: LossFn
    train_set: Any
    val_set: Any | None
    steps: int  # micro-batches per epoch
    world_batch: int
    checkpoint_path: Path | None
    progress: ConsoleProgress
    preview: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None
    items_per_sample: int = 1
    console_metrics: tuple[str, ...] | None = None
    board: TensorBoard = field(default_factory=lambda: TensorBoard(None))
    stop_requested: threading.Event = field(default_factory=threading.Event)
    best: Snapshot | None = None
    clock_start: float = field(default_factory=time.perf_counter)
    elapsed_before_s: float = 0.0  # training time of earlier sessions of the run
    end_of_epoch_s: float = 0.0  # how long validating, logging and saving took last time
    epoch_start: float = 0.0  # when this session started the running epoch
    learning_rate: float = 0.0  # the schedule's rate (before each group's lr_scale)

    @property
    def batching(self) -> dict[str, int]:
        return {"global_batch": self.world_batch,
                "grad_accumulation": self.config.grad_accumulation}

    @property
    def has_validation(self) -> bool:
        return self.val_set is not None and len(self.val_set) > 0

    @property
    def monitored_name(self) -> str:
        """What the schedule, early stopping and ``keep_best`` watch."""
        return "validation loss" if self.has_validation else "training loss"

    def say(self, text: str) -> None:
        self.progress.message(text)

    def update_elapsed(self, state: TrainingState) -> None:
        """Bring ``state.elapsed_s`` up to now (the main process's clock on every rank, when
        a time budget makes decisions depend on it)."""
        elapsed = self.elapsed_before_s + time.perf_counter() - self.clock_start
        if self.config.max_time_s is not None:
            elapsed = from_main(elapsed, self.runtime)
        state.elapsed_s = elapsed

    def progress_fraction(self, state: TrainingState) -> float:
        """How far the run is through its plan (1 = the end): the larger of the fraction of
        ``epochs`` done before the running epoch and of ``max_time_s`` spent."""
        fractions = [0.0]
        if self.config.epochs is not None:
            fractions.append(state.epoch / self.config.epochs)
        if self.config.max_time_s is not None:
            fractions.append(state.elapsed_s / self.config.max_time_s)
        return min(max(fractions), 1.0)

    def set_learning_rate(self, state: TrainingState) -> None:
        """The schedule's learning rate for the next optimiser step (each parameter group
        gets it times its ``lr_scale``, :mod:`pinn.engine.hooks`)."""
        if self.config.schedule == "cosine":
            self.learning_rate = cosine_lr(self.config.learning_rate,
                                           self.config.min_learning_rate,
                                           self.progress_fraction(state), 1.0)
        else:
            self.learning_rate = state.plateau.lr
        hooks.set_learning_rate(self.optimizer, self.learning_rate)

    def close(self) -> None:
        """Close the logs and drop the wrapped modules while the process group still exists:
        a DDP module that is only freed later, with the exception that ended training, could
        wait for ever on a peer that has gone (seen when torchrun was killed)."""
        self.board.close()
        self.wrapped = self.evaluator = self.model

    def save(self, state: TrainingState) -> None:
        """Checkpoint the run (main process only; nothing without a checkpoint directory)."""
        if self.scaler.is_enabled():
            state.grad_scaler = self.scaler.state_dict()
        if self.checkpoint_path is not None and self.runtime.is_main:
            save_run(self.checkpoint_path, self.model, self.optimizer, state, self.best)


def set_up(model: nn.Module, loss_fn: LossFn, train_set: Any, val_set: Any | None,
           config: TrainingConfig, runtime: Runtime, checkpoint_dir: str | Path | None, *,
           verbose: bool, force_precision: bool, **options: Any) -> Session:
    """Place and wrap the model, make the optimiser and choose the precision.

    Raises:
        ConfigError: fewer training items than processes; fp16 on a CPU.
    """
    n_train = len(train_set)
    if n_train < runtime.world_size:
        raise ConfigError(f"only {n_train} training groups for {runtime.world_size} processes")
    progress = ConsoleProgress(config.epochs, enabled=verbose and runtime.is_main)
    dtype = autocast_dtype(config.precision, runtime.device, force=force_precision,
                           say=progress.message)
    model.to(runtime.device)
    wrapped: nn.Module = model
    if runtime.distributed:
        wrapped = DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
    if config.compile:
        wrapped = torch.compile(wrapped)
    # Validation bypasses DDP: its forward can broadcast buffers, a collective that a rank
    # without validation items would never join. (Compiling the module again reuses the code.)
    evaluator = torch.compile(model) if config.compile else model
    optimizer = torch.optim.Adam(hooks.optimizer_groups(model), lr=config.learning_rate,
                                 betas=(0.9, config.adam_beta2),
                                 eps=keras_adam_eps(1, beta2=config.adam_beta2))
    world_batch = config.batch_size * runtime.world_size
    return Session(
        config=config, runtime=runtime, model=model, wrapped=wrapped, evaluator=evaluator,
        optimizer=optimizer, scaler=torch.amp.GradScaler("cuda", enabled=dtype == torch.float16),
        autocast=dtype, loss_fn=loss_fn, train_set=train_set, val_set=val_set,
        steps=math.ceil(n_train / world_batch), world_batch=world_batch,
        checkpoint_path=checkpoint_file(checkpoint_dir) if checkpoint_dir is not None else None,
        progress=progress, **options)
