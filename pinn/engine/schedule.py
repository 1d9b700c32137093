"""Learning-rate schedules (plateau reduction with Keras's semantics, a planned cosine decay)
and early stopping.

The stateful ones keep their whole state in a small JSON-able dict so that checkpoints stay
pickle-free; the cosine decay is a pure function of the run's progress.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def cosine_lr(lr: float, min_lr: float, done: float, planned: float) -> float:
    """Cosine decay from ``lr`` (nothing done) to ``min_lr`` (``done == planned``), clamped:
    ``min_lr + (lr - min_lr) * (1 + cos(pi * done / planned)) / 2``. ``done`` and ``planned``
    count epochs (the rate of 0-based epoch ``done``) or any other measure of a run's plan."""
    fraction = min(max(done / max(planned, 1e-12), 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * fraction))


@dataclass
class Plateau:
    """Halve (``factor``) the learning rate after ``patience`` epochs without improvement.

    Improvement means ``value < best - min_delta``. As Keras's ``ReduceLROnPlateau``: the wait
    counter resets after each reduction and the rate never goes below ``min_lr``.
    """

    lr: float
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 1e-4
    min_delta: float = 1e-4
    best: float = math.inf
    wait: int = 0

    def update(self, value: float) -> float:
        """Record an epoch's monitored value; returns the learning rate for the next epoch."""
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience and self.lr > self.min_lr:
                self.lr = max(self.lr * self.factor, self.min_lr)
                self.wait = 0
        return self.lr

    def state_dict(self) -> dict:
        return asdict(self)


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs in a row whose value did not beat the best (Keras's
    ``EarlyStopping`` with ``min_delta=0``); ``patience=0`` never stops."""

    patience: int = 3
    best: float = math.inf
    wait: int = 0

    def update(self, value: float) -> bool:
        """Record an epoch's value; True when training should stop."""
        if value < self.best:
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return self.patience > 0 and self.wait >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)
