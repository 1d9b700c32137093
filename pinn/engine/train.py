"""The training loop, as an outline: set up, start or resume, run epochs, finish.

:func:`train` reads top to bottom; each step is a helper that fits on a screen:
:func:`~pinn.engine.session.set_up` (device placement, DDP, compile, optimiser, precision),
:func:`_start` (a fresh :class:`~pinn.engine.state.TrainingState` or the checkpoint's, with
the resume rules of :mod:`pinn.engine.resume`), :func:`~pinn.engine.epoch.run_epoch` and
:func:`~pinn.engine.epoch.end_epoch`, and :func:`_finish` (the best weights back). The engine
knows nothing about ptychography: it trains any module with a ``loss_fn(model, batch)`` and
logs whatever scalars that function returns.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pinn.atomic import remove_stale_temporaries
from pinn.config import TrainingConfig
from pinn.engine.distributed import Runtime, collective_failure, setup, teardown
from pinn.engine.epoch import TrainingInterrupted, end_epoch, evaluate, run_epoch
from pinn.engine.progress import TensorBoard, format_duration
from pinn.engine.resume import load_run, reconcile, restore_run
from pinn.engine.schedule import EarlyStopping, Plateau
from pinn.engine.seed import seed_everything
from pinn.engine.session import LossFn, Session, set_up
from pinn.engine.signals import install_stop_handlers
from pinn.engine.state import TrainingState
from pinn.errors import ConfigError

__all__ = ["LossFn", "TrainResult", "TrainingInterrupted", "train"]


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        history: one dict per finished epoch (see :class:`~pinn.engine.state.TrainingState`).
        stop_reason: ``"epochs"``, ``"early_stopping"`` or ``"max_time"``.
        best_epoch: the epoch with the lowest monitored loss (None: no finite one).
        restored_epoch: the epoch whose weights the model ends with when that is not the last
            one (``keep_best``), else None.
        changes: the changes of plan made when resuming (``TrainingState.changes``).
        elapsed_s: training time over all sessions of the run.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    stop_reason: str = "epochs"
    best_epoch: int | None = None
    restored_epoch: int | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason == "early_stopping"


def train(model: nn.Module, loss_fn: LossFn, train_set: Any, val_set: Any | None,
          config: TrainingConfig, *, checkpoint_dir: str | Path | None = None,
          log_dir: str | Path | None = None, resume: bool = False,
          device: str | torch.device | None = "cpu",
          preview: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None,
          items_per_sample: int = 1, run_info: dict[str, Any] | None = None,
          verbose: bool = True, console_metrics: tuple[str, ...] | None = None,
          force_precision: bool = False) -> TrainResult:
    """Train ``model`` in place (seed with :func:`seed_everything` before building it).

    Args:
        loss_fn: ``(model, batch) -> (loss, metrics)``; the epoch means of the loss and of
            every metric go into the history as ``train_<name>`` and ``val_<name>``.
        train_set, val_set: datasets; ``get_batch(indices)`` is used when present, else items
            (dicts of tensors) are stacked. ``val_set`` may be None or empty.
        checkpoint_dir: where ``last.safetensors`` is written every epoch and on SIGINT/SIGTERM.
        log_dir: TensorBoard directory; each run logs into ``log_dir/<run id>/``, which a
            resumed run continues.
        resume: continue the run checkpointed in ``checkpoint_dir`` (:mod:`pinn.engine.resume`
            says what may change).
        device: "cpu", "cuda", "cuda:N" or "auto" (under DDP on CUDA: ``cuda:LOCAL_RANK``).
        preview: returns ``(H, W)`` images of the current model for TensorBoard.
        items_per_sample: patterns per dataset item (for patterns/s).
        run_info: JSON-able facts that must match when resuming (e.g. the data's hash).
        verbose: print progress (main process only).
        console_metrics: the metrics the console shows besides the loss (None: all).
        force_precision: bf16 even on a CPU that emulates it.

    Raises:
        TrainingInterrupted: after SIGINT/SIGTERM, once the checkpoint is written.
        TrainingError: after ``config.max_nonfinite_steps`` non-finite steps in a row; under
            DDP, when another process stops answering for ``PINN_DDP_TIMEOUT_S`` seconds.
        ConfigError: fp16 on CPU; ``resume`` without a checkpoint or with a refused change;
            a ``run_info`` that is not JSON-able.
        ArchiveError: a damaged checkpoint, or one of another model.
    """
    run_info = _as_json(run_info)
    runtime = setup(device)
    session, restore_signals = None, lambda: None
    try:
        seed_everything(config.seed, config.deterministic)
        session = set_up(model, loss_fn, train_set, val_set, config, runtime, checkpoint_dir,
                         verbose=verbose, force_precision=force_precision, preview=preview,
                         items_per_sample=items_per_sample, console_metrics=console_metrics)
        state = _start(session, resume, run_info)
        session.board = TensorBoard(_log_directory(log_dir, state, runtime))
        restore_signals = install_stop_handlers(session.stop_requested)
        while _more_to_do(session, state):
            budget_spent = run_epoch(session, state)
            end_epoch(session, state, budget_spent)
        return _finish(session, state)
    except RuntimeError as exc:  # the watchdog: partners that stopped answering
        _raise_collective_failure(exc, runtime)
        raise
    finally:
        restore_signals()
        if session is not None:
            session.close()
        teardown(runtime)


def _raise_collective_failure(exc: RuntimeError, runtime: Runtime) -> None:
    """Raise the one-line :class:`~pinn.engine.distributed.CollectiveFailure` when ``exc``
    is a collective operation that the other processes never joined."""
    failure = collective_failure(exc, runtime)
    if failure is not None:
        raise failure from None


def _as_json(run_info: Any) -> Any:
    """``run_info`` as it reads back from a checkpoint (a tuple becomes a list)."""
    try:
        return json.loads(json.dumps(run_info, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_info must be JSON-able, as it is stored in checkpoints: {exc}"
                          ) from None


def _start(s: Session, resume: bool, run_info: Any) -> TrainingState:
    """A fresh state, or the checkpoint's (weights, optimiser and RNG restored)."""
    c = s.config
    state = TrainingState(
        settings=dataclasses.asdict(c), run_info=run_info, batching=s.batching,
        run_id=time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        plateau=Plateau(lr=c.learning_rate, factor=c.plateau_factor,
                        patience=c.plateau_patience, min_lr=c.min_learning_rate),
        # a cosine decay is a plan: it runs to its end (epochs or budget), not cut off while the
        # rate is still high (docs/DESIGN.md section 5)
        early_stopping=EarlyStopping(
            patience=c.early_stopping_patience if c.schedule == "plateau" else 0))
    path = s.checkpoint_path
    if path is not None and s.runtime.is_main:
        remove_stale_temporaries(path.parent)
    if resume:
        if path is None or not path.is_file():
            raise ConfigError(f"nothing to resume: {path or 'no checkpoint directory'} does not "
                              "exist; start without resume")
        tensors, meta, state = load_run(path)
        reconcile(state, dataclasses.asdict(c), run_info, s.batching, path)
        s.best = restore_run(tensors, meta, s.model, s.optimizer)
        if s.scaler.is_enabled() and state.grad_scaler:
            s.scaler.load_state_dict(state.grad_scaler)
        if not s.runtime.is_main:  # running sums live on the main process only
            state.sums, state.items = {}, 0.0
        _say_resumed(s, state)
    elif c.keep_best and s.has_validation:
        # the reference for "all progress lost" (Best.diverged): the untrained model's
        # validation loss, not the first epoch's, which noise may beat while nothing is learnt
        start = float(evaluate(s)["loss"])
        if math.isfinite(start):
            state.best.first = start
    s.elapsed_before_s, s.clock_start = state.elapsed_s, time.perf_counter()
    s.set_learning_rate(state)
    return state


def _say_resumed(s: Session, state: TrainingState) -> None:
    where = f"epoch {state.epoch + 1}" + (f", step {state.step}" if state.step else "")
    s.say(f"resuming at {where} ({format_duration(state.elapsed_s)} trained so far)")
    for change in state.changes:
        if change["epoch"] == state.epoch and not state.step:
            s.say(f"{change['field']}: {change['old']} -> {change['new']} (the plan changes "
                  "from here on)")


def _log_directory(log_dir: str | Path | None, state: TrainingState,
                   runtime: Runtime) -> Path | None:
    """``log_dir/<run id>`` (main process only); a new run's id gets a suffix if taken."""
    if log_dir is None or not runtime.is_main:
        return None
    if state.epoch == 0 and state.step == 0:
        base, n = state.run_id, 1
        while (Path(log_dir) / state.run_id).exists():
            n += 1
            state.run_id = f"{base}-{n}"
    return Path(log_dir) / state.run_id


def _more_to_do(s: Session, state: TrainingState) -> bool:
    if state.stop_reason:
        return False
    if s.config.epochs is not None and state.epoch >= s.config.epochs:
        return False
    return s.config.max_time_s is None or state.elapsed_s < s.config.max_time_s


def _finish(s: Session, state: TrainingState) -> TrainResult:
    """End with the best epoch's weights (``keep_best``) and say why the run ended."""
    reason = state.stop_reason or (
        "epochs" if s.config.epochs is not None and state.epoch >= s.config.epochs
        else "max_time")
    restored = None
    if s.best is not None and state.best.epoch not in (0, state.epoch):
        s.best.restore_weights(s.model)
        restored = state.best.epoch
        last = state.history[-1].get("val_loss", state.history[-1].get("train_loss"))
        s.say(f"keeping the weights of epoch {restored}: its {s.monitored_name} "
              f"{state.best.value:.6g} is the lowest (the last epoch's is {last:.6g})")
    return TrainResult(history=list(state.history), stop_reason=reason,
                       best_epoch=state.best.epoch or None, restored_epoch=restored,
                       changes=list(state.changes), elapsed_s=state.elapsed_s)
