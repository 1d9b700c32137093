"""The training state: everything the loop carries from step to step and into a checkpoint.

:class:`TrainingState` is a plain, typed dataclass whose on-disk form (:meth:`to_dict`, JSON in
the checkpoint's metadata) carries a version, :data:`STATE_VERSION`. Tensors (weights, the
optimiser's moments, the RNG state, the best weights) are not part of it: the checkpoint stores
them beside it (see :mod:`pinn.engine.resume`).

Counting conventions: ``epoch`` is the number of finished epochs (the next epoch to run, from
0), ``step`` the number of micro-batches already done in the running epoch, and a history entry
``{"epoch": e, ...}`` describes the e-th epoch (from 1).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pinn.engine.schedule import EarlyStopping, Plateau
from pinn.errors import ArchiveError

#: Version of :meth:`TrainingState.to_dict`'s layout; a checkpoint of another version is refused.
STATE_VERSION = 1

#: Why a run ended: not yet, its epochs, early stopping, its time budget.
STOP_REASONS = ("", "epochs", "early_stopping", "max_time")


#: An epoch has diverged when its monitored loss gave back more than this fraction of the
#: improvement made from the start to the best epoch (a scale-free test: the loss may have
#: any offset or sign). 1: worse than at the start, all progress lost. The start is the
#: untrained model's validation loss (measured before the first step), or without a
#: validation split the first epoch's training loss. (Smaller fractions, 0.05 and 0.5, fired
#: on the noise of a small validation split early in a demo-like run and cost it amplitude
#: SSIM 0.71 -> 0.41 / 0.65 after 20 epochs. So did the first epoch's validation loss as the
#: start: while the network still gives a flat object, the next epoch's loss is as often a
#: little above it as below, and on `lines` the rollbacks and rate cuts this caused kept the
#: first 4 epochs flat, benchmarks/README.md, "Time to quality".)
DIVERGENCE = 1.0


@dataclass
class Best:
    """The best epoch so far by the monitored loss (validation loss, else training loss).

    ``epoch`` is 0 until an epoch has finished with a finite monitored value; the weights and
    optimiser state of that epoch are kept beside the state while ``keep_best`` is on.
    ``first`` is the value at the start, the reference for :meth:`diverged` (see
    :data:`DIVERGENCE`): set before training when there is a validation split, else the
    first epoch's.
    """

    value: float = math.inf
    epoch: int = 0
    first: float = math.inf

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's monitored value; True when it is the new best (strictly lower)."""
        if self.first == math.inf and math.isfinite(value):
            self.first = value
        if value < self.value:
            self.value, self.epoch = value, epoch
            return True
        return False

    def diverged(self, value: float) -> bool:
        """Whether ``value`` (not NaN-safe: NaN diverges) is worse than the best by more than
        :data:`DIVERGENCE` of the improvement since the start (``first``)."""
        if self.epoch == 0:
            return False
        return not value <= self.value + DIVERGENCE * (self.first - self.value)


@dataclass
class TrainingState:
    """What a training run has done so far and how it continues.

    Attributes:
        settings: the training configuration the run follows now (``TrainingConfig`` as a
            dict); compared field by field on resume.
        run_info: caller facts that must match on resume (configuration, data hash), JSON.
        batching: ``global_batch`` and ``grad_accumulation``, which give a mid-epoch ``step``
            its meaning.
        run_id: names the run's TensorBoard directory; kept across resumes.
        epoch: finished epochs.
        step: micro-batches done in the running epoch (0 at an epoch boundary).
        global_step: optimiser windows done over the whole run (skipped ones included).
        sums, items: the running epoch's sums of loss and metrics, weighted by items, and the
            number of items (on the main process; other ranks keep their own share).
        nonfinite: non-finite steps in a row.
        elapsed_s: training time spent over all sessions of the run (for ``max_time_s``).
        stop_reason: one of :data:`STOP_REASONS`; "" while the run may go on.
        plateau, early_stopping: the schedule's and early stopping's own state.
        best: the best epoch so far.
        grad_scaler: the fp16 gradient scaler's state (empty without fp16).
        history: one summary per finished epoch (``epoch``, ``train_*`` and ``val_*`` means of
            what the loss function returns, ``learning_rate``, ``seconds``...).
        changes: every change of plan made when resuming (``{"epoch": e, "field": name,
            "old": value, "new": value}``: at which finished epoch, what changed).
    """

    settings: dict[str, Any]
    run_info: Any = None
    batching: dict[str, int] = field(default_factory=dict)
    run_id: str = ""
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    items: float = 0.0
    nonfinite: int = 0
    elapsed_s: float = 0.0
    stop_reason: str = ""
    plateau: Plateau = field(default_factory=lambda: Plateau(lr=1e-3))
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    best: Best = field(default_factory=Best)
    grad_scaler: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able on-disk form, with ``version``."""
        return {"version": STATE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, raw: Any) -> TrainingState:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ArchiveError: another version, or not the layout of this version.
        """
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            version = raw.get("version") if isinstance(raw, dict) else None
            raise ArchiveError(f"the checkpoint's training state has version {version!r}; this "
                               f"pinn reads version {STATE_VERSION}. Start a new run")
        values = {k: v for k, v in raw.items() if k != "version"}
        try:
            values["plateau"] = Plateau(**values["plateau"])
            values["early_stopping"] = EarlyStopping(**values["early_stopping"])
            values["best"] = Best(**values["best"])
            state = cls(**values)
        except (KeyError, TypeError) as exc:
            raise ArchiveError(f"the checkpoint's training state is malformed ({exc}); start a "
                               "new run") from None
        if state.stop_reason not in STOP_REASONS:
            raise ArchiveError(f"the checkpoint's stop reason {state.stop_reason!r} is unknown")
        return state
