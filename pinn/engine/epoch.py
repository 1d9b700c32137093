"""One epoch of training: its micro-batches and optimiser steps (:func:`run_epoch`), then its
end (:func:`end_epoch`: validation, schedule, best weights, logs, checkpoint).

Reproducibility: the data order of every epoch comes from ``(seed, epoch)`` alone, and a
checkpoint stores the exact position inside the epoch, so a run that is killed and resumed
ends with the same weights, bit for bit on CPU, as one that never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pinn.engine import hooks
from pinn.engine.batching import collate, shard, to_device
from pinn.engine.distributed import agree, from_main, reduce_sums
from pinn.engine.optim import adam_steps_taken, keras_adam_eps
from pinn.engine.progress import format_duration, plural
from pinn.engine.resume import Snapshot
from pinn.engine.seed import epoch_generator
from pinn.engine.session import Session
from pinn.engine.state import TrainingState
from pinn.errors import PinnError, TrainingError


class TrainingInterrupted(PinnError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; resume to continue."""


@dataclass
class _Meter:
    """This session's share of the running epoch: for patterns/s and the ETA."""

    first_step: int
    start: float = field(default_factory=time.perf_counter)
    items: int = 0

    def seconds_per_step(self, step: int) -> float:
        return (time.perf_counter() - self.start) / max(step - self.first_step, 1)


def run_epoch(s: Session, state: TrainingState) -> bool:
    """Train epoch ``state.epoch`` from micro-batch ``state.step`` to its end.

    Returns:
        True when the time budget ran out first (the epoch then ends early).

    Raises:
        TrainingInterrupted: on a stop request, once the checkpoint is written.
        TrainingError: after ``max_nonfinite_steps`` non-finite steps in a row.
    """
    order = torch.randperm(len(s.train_set), generator=epoch_generator(s.config.seed,
                                                                        state.epoch))
    hooks.on_epoch_start(s.model, state.epoch)
    s.wrapped.train()
    s.optimizer.zero_grad(set_to_none=True)
    meter = _Meter(first_step=state.step)
    s.epoch_start = meter.start
    window_ok = True
    for step in range(state.step, s.steps):
        batch_indices = order[step * s.world_batch:(step + 1) * s.world_batch]
        loss, finite = _micro_batch(s, state, batch_indices, step)
        window_ok = window_ok and finite
        meter.items += len(batch_indices)
        if step + 1 != _window(s, step)[1]:
            continue
        grad_norm = _optimizer_step(s, state, window_ok, step)
        window_ok = True
        state.step, state.global_step = step + 1, state.global_step + 1
        s.update_elapsed(state)
        _report_step(s, state, meter, float(loss.detach()), grad_norm)
        if agree(s.stop_requested.is_set(), s.runtime, any_rank=True):
            _interrupt(s, state)
        if _budget_spent(s, state, meter):
            return True
    return False


def _window(s: Session, step: int) -> tuple[int, int]:
    """The accumulation window of micro-batch ``step``: ``[start, end)``."""
    start = step - step % s.config.grad_accumulation
    return start, min(start + s.config.grad_accumulation, s.steps)


def _autocast(s: Session) -> torch.autocast:
    return torch.autocast(s.runtime.device.type, dtype=s.autocast, enabled=s.autocast is not None)


def _micro_batch(s: Session, state: TrainingState, batch_indices: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, bool]:
    """Forward and backward of one micro-batch; adds it to the epoch's sums. Returns the loss
    and whether every rank's loss was finite (else nothing was back-propagated)."""
    window_start, window_end = _window(s, step)
    n_train = len(s.train_set)
    window_items = (min(window_end * s.world_batch, n_train) - window_start * s.world_batch)
    local = shard(batch_indices, s.runtime)
    batch = to_device(collate(s.train_set, local), s.runtime.device)
    # Weight so that the DDP-averaged gradient is the mean over the whole window.
    weight = len(local) * s.runtime.world_size / window_items
    sync = step + 1 == window_end or not s.runtime.distributed
    with s.wrapped.no_sync() if not sync else contextlib.nullcontext():
        with _autocast(s):
            loss, metrics = s.loss_fn(s.wrapped, batch)
        # A rank with an empty share of a short last batch (its loss is NaN or not even
        # differentiable) still joins DDP's gradient all-reduce, adding 0.
        finite = agree(len(local) == 0 or bool(torch.isfinite(loss)), s.runtime)
        if finite:
            objective = loss * weight if len(local) else _zero_objective(s.model)
            s.scaler.scale(objective).backward()
    if finite and len(local):
        for name, value in {"loss": loss, **metrics}.items():
            state.sums[name] = state.sums.get(name, 0.0) + float(value.detach()) * len(local)
        state.items += len(local)
    return loss, finite


def _zero_objective(model: nn.Module) -> torch.Tensor:
    """A scalar 0 that depends on every trainable parameter (its gradients are all 0)."""
    return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)


def _optimizer_step(s: Session, state: TrainingState, window_ok: bool, step: int) -> float:
    """Clip and apply the window's gradient, or skip a non-finite one; returns its norm."""
    s.scaler.unscale_(s.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(),
                                               s.config.grad_clip_norm or math.inf)
    if not window_ok or not torch.isfinite(grad_norm):
        s.optimizer.zero_grad(set_to_none=True)
        if s.scaler.is_enabled():
            s.scaler.update()
        state.nonfinite += 1
        s.say(f"warning: non-finite loss or gradient at epoch {state.epoch + 1} step "
              f"{step + 1}; step skipped ({state.nonfinite} in a row)")
        if state.nonfinite >= s.config.max_nonfinite_steps:
            raise TrainingError(f"{state.nonfinite} non-finite losses or gradients in a row; "
                                "training stopped. Lower the learning rate, check the data for "
                                "zeros/NaN, or use precision 'off'")
    else:
        s.set_learning_rate(state)
        step = adam_steps_taken(s.optimizer) + 1
        for group in s.optimizer.param_groups:  # each group's own second-moment decay
            group["eps"] = keras_adam_eps(step, beta2=group["betas"][1])
        s.scaler.step(s.optimizer)
        s.scaler.update()
        hooks.after_step(s.model)
        state.nonfinite = 0
    s.optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


def _report_step(s: Session, state: TrainingState, meter: _Meter, loss: float,
                 grad_norm: float) -> None:
    elapsed = time.perf_counter() - meter.start
    rate = meter.items * s.items_per_sample / max(elapsed, 1e-9)
    per_step = meter.seconds_per_step(state.step)
    remaining = (s.steps - state.step) * per_step
    if s.config.epochs is not None:
        remaining += (s.config.epochs - state.epoch - 1) * s.steps * per_step
    if s.config.max_time_s is not None:
        left = max(s.config.max_time_s - state.elapsed_s, 0.0)
        remaining = min(remaining, left) if s.config.epochs is not None else left
    if s.runtime.is_main:
        s.board.scalars({"train/loss_step": loss, "train/grad_norm": grad_norm,
                         "train/patterns_per_s": rate, "train/learning_rate": s.learning_rate},
                        state.global_step)
    s.progress.step(state.epoch, state.step, s.steps, loss, rate, remaining)


def _interrupt(s: Session, state: TrainingState) -> None:
    state.sums, state.items = reduce_sums(state.sums, state.items, s.runtime)
    s.save(state)
    where = f"training interrupted at epoch {state.epoch + 1}, step {state.step}"
    raise TrainingInterrupted(where + (f"; checkpoint saved to {s.checkpoint_path}"
                                       if s.checkpoint_path is not None else
                                       "; no checkpoint directory was given"))


def _budget_spent(s: Session, state: TrainingState, meter: _Meter) -> bool:
    """Would another step and the epoch's end overrun the time budget? (The main process
    decides, so that every rank stops at the same step.)"""
    if s.config.max_time_s is None:
        return False
    needed = meter.seconds_per_step(state.step) + s.end_of_epoch_s
    spent = state.elapsed_s + needed >= s.config.max_time_s
    return from_main(float(spent), s.runtime) > 0.5


def end_epoch(s: Session, state: TrainingState, budget_spent: bool) -> None:
    """Close the epoch: summary into the history, best weights, schedule, early stopping,
    logs and checkpoint. With ``budget_spent`` the epoch ended early and the run stops."""
    started = time.perf_counter()
    summary = _summarise(s, state, partial=budget_spent)
    monitored = summary.get("val_loss", summary.get("train_loss", math.inf))
    state.history.append(summary)
    state.epoch, state.step, state.sums, state.items = state.epoch + 1, 0, {}, 0.0
    if state.best.update(monitored, state.epoch) and s.config.keep_best:
        s.best = Snapshot.take(s.model, s.optimizer)
    _schedule(s, state, monitored, summary)
    if state.early_stopping.update(summary.get("train_loss", math.inf)):
        state.stop_reason = "early_stopping"
        s.say(f"early stopping: the training loss has not improved for "
              f"{plural(state.early_stopping.patience, 'epoch')}")
    if budget_spent:
        state.stop_reason = "max_time"
        s.say(f"time budget of {format_duration(s.config.max_time_s)} spent: stopping after "
              f"{state.epoch - 1} + {summary['epoch_fraction']:.2f} epochs")
    _log_epoch(s, state, summary)
    s.update_elapsed(state)
    s.save(state)
    s.end_of_epoch_s = time.perf_counter() - started


def _summarise(s: Session, state: TrainingState, partial: bool) -> dict[str, float]:
    """The epoch's means of the loss and of what the loss function returns (``train_*``,
    ``val_*``), its learning rate, seconds and number."""
    sums, items = reduce_sums(state.sums, state.items, s.runtime)
    summary = {f"train_{k}": v / max(items, 1.0) for k, v in sums.items()}
    if s.has_validation:
        summary.update({f"val_{k}": v for k, v in evaluate(s).items()})
    summary["learning_rate"] = s.learning_rate
    summary["seconds"] = time.perf_counter() - s.epoch_start
    summary["epoch"] = state.epoch + 1
    if partial:
        summary["epoch_fraction"] = state.step / s.steps
    return summary


def _schedule(s: Session, state: TrainingState, monitored: float,
              summary: dict[str, float]) -> None:
    """The schedule's step. An epoch that diverged (:meth:`~pinn.engine.state.Best.diverged`,
    e.g. a loss spike) sends training back to the best epoch's weights and optimiser state
    (``keep_best``) and, with the plateau schedule, lowers the rate at once."""
    plateau = state.plateau
    if s.best is not None and state.best.epoch != state.epoch and state.best.diverged(monitored):
        s.best.restore(s.model, s.optimizer)
        summary["restored_epoch"] = float(state.best.epoch)
        if s.config.schedule == "plateau":
            plateau.lr, plateau.wait = max(plateau.lr * plateau.factor, plateau.min_lr), 0
        s.say(f"the {s.monitored_name} jumped to {monitored:.6g} (best {state.best.value:.6g}"
              f"): training goes back to epoch {state.best.epoch}'s weights"
              + (f" at learning rate {plateau.lr:.3g}" if s.config.schedule == "plateau" else ""))
    elif s.config.schedule == "plateau":
        plateau.update(monitored)
    s.set_learning_rate(state)


def _log_epoch(s: Session, state: TrainingState, summary: dict[str, float]) -> None:
    if s.runtime.is_main:
        s.board.scalars({f"epoch/{k}": v for k, v in summary.items() if k != "epoch"},
                        state.epoch)
        if s.preview is not None and s.config.log_images:
            s.model.eval()
            with torch.no_grad():
                s.board.images(s.preview(s.model), state.epoch)
    shown = {k: v for k, v in summary.items() if _shown(s, k)}
    s.progress.epoch(state.epoch - 1, shown, summary["seconds"])


def _shown(s: Session, key: str) -> bool:
    """Whether the console line shows this summary entry: the learning rate, and the
    ``train_``/``val_`` means of the loss and of the metrics asked for (all by default)."""
    if key == "learning_rate":
        return True
    prefix, _, name = key.partition("_")
    if prefix not in ("train", "val"):
        return False
    return s.console_metrics is None or name == "loss" or name in s.console_metrics


@torch.no_grad()
def evaluate(s: Session) -> dict[str, Any]:
    """Mean loss and metrics over the validation set, sharded over ranks."""
    s.evaluator.eval()
    order = torch.arange(len(s.val_set))
    sums: dict[str, float] = {}
    items = 0
    for start in range(0, len(s.val_set), s.world_batch):
        local = shard(order[start:start + s.world_batch], s.runtime)
        if len(local) == 0:
            continue
        batch = to_device(collate(s.val_set, local), s.runtime.device)
        with _autocast(s):
            loss, metrics = s.loss_fn(s.evaluator, batch)
        for name, value in {"loss": loss, **metrics}.items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(local)
        items += len(local)
    sums, total = reduce_sums(sums, float(items), s.runtime)
    return {k: v / max(total, 1.0) for k, v in sums.items()}
