"""A run's checkpoint, and how a run continues from one.

The checkpoint of a run is one file (:data:`CHECKPOINT_NAME` in the checkpoint directory): the
model's weights, the optimiser, the torch RNG state, the best epoch's weights and optimiser
state (``keep_best``) and the :class:`~pinn.engine.state.TrainingState`.

Resuming continues the run exactly when nothing changed. Only the plan may change:
``epochs`` and ``max_time_s`` (:data:`EXTENDABLE`), so that a finished or interrupted run can be
extended, and how it executes: ``compile`` and ``log_images`` (:data:`EXECUTION`). Each such
change is recorded in ``TrainingState.changes``. Any other change of the training settings or
of the caller's ``run_info`` is refused with a line that names it.

An extended run equals a run planned that long from the start (bit for bit on CPU) when the
schedule does not depend on the plan: the plateau schedule does not, the cosine decay does (it
is re-planned over the new length from where the run stands), and so does a time budget.

Other code reads a run through :func:`checkpoint_file`, :func:`read_training_state` and
:func:`read_history`, never through the checkpoint's keys.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pinn.engine import checkpoint as ckpt
from pinn.engine.state import TrainingState
from pinn.errors import ArchiveError, ConfigError

CHECKPOINT_NAME = "last.safetensors"
#: Training settings a resumed run may change: its plan ...
EXTENDABLE = ("epochs", "max_time_s")
#: ... and how it executes (the same arithmetic, up to compiler rounding).
EXECUTION = ("compile", "log_images")


@dataclass
class Snapshot:
    """The weights and optimiser state of one moment of training (the best epoch's), held in
    memory apart from the live ones."""

    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]

    @classmethod
    def take(cls, model: nn.Module, optimizer: torch.optim.Optimizer) -> Snapshot:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(weights, copy.deepcopy(optimizer.state_dict()))

    def restore_weights(self, model: nn.Module) -> None:
        model.load_state_dict(self.weights, strict=True)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Put these weights and optimiser state back (copies: training goes on from them)."""
        self.restore_weights(model)
        # load_state_dict keeps tensors that already fit, so give it copies to update.
        optimizer.load_state_dict(copy.deepcopy(self.optimizer))


def checkpoint_file(checkpoint_dir: str | os.PathLike) -> Path:
    """Where a run that checkpoints into ``checkpoint_dir`` keeps its last checkpoint."""
    return Path(checkpoint_dir) / CHECKPOINT_NAME


def _file(path: str | os.PathLike) -> Path:
    path = Path(path)
    return checkpoint_file(path) if path.is_dir() else path


def read_training_state(path: str | os.PathLike) -> TrainingState:
    """The training state of the checkpoint at ``path`` (the file or its directory).

    Raises:
        ArchiveError: missing, damaged, or not a checkpoint this pinn reads.
    """
    _, meta = ckpt.load_checkpoint(_file(path))
    return TrainingState.from_dict(_section(meta, "training"))


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """The per-epoch history of the run checkpointed at ``path`` (the file or its directory):
    one dict per finished epoch (``epoch``, ``train_loss``, ``val_loss``, the loss function's
    metrics, ``learning_rate``, ``seconds``...). Raises ArchiveError as
    :func:`read_training_state`."""
    return read_training_state(path).history


def _section(meta: dict[str, Any], name: str) -> Any:
    state = meta.get("state")
    return state.get(name) if isinstance(state, dict) else None


def save_run(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             state: TrainingState, best: Snapshot | None) -> None:
    """Write the run's checkpoint atomically."""
    extra = {"torch_rng": torch.get_rng_state()}
    sections: dict[str, Any] = {"training": state.to_dict()}
    if best is not None:
        extra.update(ckpt.prefixed("best/model/", best.weights))
        tensors, sections["best_optimizer"] = ckpt.pack_optimizer(best.optimizer)
        extra.update(ckpt.prefixed("best/optimizer/", tensors))
    ckpt.save_checkpoint(path, model, optimizer, sections, extra_tensors=extra)


def load_run(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], TrainingState]:
    """Read a run's checkpoint without applying it: ``(tensors, meta, state)``.

    Raises:
        ArchiveError: missing, damaged, or not a checkpoint this pinn reads.
    """
    tensors, meta = ckpt.load_checkpoint(path)
    return tensors, meta, TrainingState.from_dict(_section(meta, "training"))


def restore_run(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: nn.Module,
                optimizer: torch.optim.Optimizer) -> Snapshot | None:
    """Apply a checkpoint read by :func:`load_run`: weights, optimiser and RNG state; returns
    the best epoch's snapshot when the checkpoint holds one.

    Raises:
        ArchiveError: the checkpoint does not fit the model or the optimiser.
    """
    extra = ckpt.restore(tensors, meta, model, optimizer)
    best = None
    if "best_optimizer" in meta["state"]:
        weights = ckpt.unprefixed("best/model/", extra)
        live = model.state_dict()
        if sorted(weights) != sorted(live) or any(weights[k].shape != live[k].shape
                                                  for k in live):
            raise ArchiveError("the checkpoint's best weights do not match this model")
        try:
            optimizer_state = ckpt.optimizer_state(
                optimizer, ckpt.unprefixed("best/optimizer/", extra),
                meta["state"]["best_optimizer"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArchiveError(f"the checkpoint's best optimiser state is malformed ({exc})"
                               ) from None
        best = Snapshot(weights, optimizer_state)
    torch.set_rng_state(extra["torch_rng"])
    return best


def reconcile(state: TrainingState, settings: dict[str, Any], run_info: Any,
              batching: dict[str, int], path: Path) -> None:
    """Check that this run may continue ``state``, and record a change of plan in it.

    Raises:
        ConfigError: ``run_info`` or a training setting other than :data:`EXTENDABLE` differs
            (the message names it), or the run stopped mid-epoch with other batching.
    """
    difference = _first_difference(state.run_info, run_info)
    if difference is not None:
        raise ConfigError(f"cannot resume from {path}: {difference}; resume with the data and "
                          "configuration of the run, or start a new output directory")
    changed = []
    for name in sorted(set(settings) | set(state.settings)):
        old, new = state.settings.get(name), settings.get(name)
        if old == new:
            continue
        if name not in EXTENDABLE + EXECUTION:
            raise ConfigError(f"cannot resume from {path}: training.{name} was {old!r} and is "
                              f"now {new!r}; only {', '.join(EXTENDABLE + EXECUTION)} may "
                              "change when resuming (start a new output directory for other "
                              "changes)")
        changed.append({"epoch": state.epoch, "field": name, "old": old, "new": new})
    # A mid-epoch position counts global micro-batches and accumulation windows: it means
    # something else with another number of processes.
    if state.step and state.batching != batching:
        raise ConfigError(f"cannot resume from {path}: it stopped mid-epoch with "
                          f"{state.batching}; this run has {batching}. Resume with the same "
                          "number of processes")
    if changed:
        state.changes.extend(changed)
        state.settings = dict(settings)
    if any(change["field"] in EXTENDABLE for change in changed):
        state.stop_reason = ""  # a new plan: early stopping or the budget may let it go on
        state.early_stopping.wait = 0
    state.batching = dict(batching)


def _first_difference(old: Any, new: Any, where: str = "run_info") -> str | None:
    """Where two JSON values first differ, as ``"<path> was <old>, now <new>"`` (None: equal)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                return f"{where}.{key} is {'new' if key not in old else 'missing now'}"
            found = _first_difference(old[key], new[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = _first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if old == new else f"{where} was {old!r}, now {new!r}"


__all__ = ["CHECKPOINT_NAME", "EXECUTION", "EXTENDABLE", "Snapshot", "checkpoint_file", "read_history",
           "read_training_state"]
