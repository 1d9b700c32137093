"""The optimiser's details that make pinn's Adam the reference's (Keras's) Adam."""

from __future__ import annotations

import math

import torch


def keras_adam_eps(step: int, epsilon: float = 1e-7, beta2: float = 0.999) -> float:
    """torch's Adam epsilon that reproduces Keras's Adam (the reference's) at ``step``.

    Keras adds its epsilon (1e-7) to the uncorrected ``sqrt(v)``, torch adds its own to the
    bias-corrected ``sqrt(v / (1 - beta2**t))``; the two updates agree exactly when torch's
    epsilon is ``1e-7 / sqrt(1 - beta2**t)``, with the ``beta2`` (second-moment decay) the
    update uses: each parameter group's own.
    """
    return epsilon / math.sqrt(1.0 - beta2**step)


def adam_steps_taken(optimizer: torch.optim.Optimizer) -> int:
    """How many updates Adam has applied (its own counter; skipped steps do not count): the
    largest count over the parameters. Parameters that joined later (e.g. frozen during a
    warm-up) count fewer, and the order of ``optimizer.state`` is not fixed (a restored state
    can come back in another order), so the first entry is not the answer."""
    steps = [int(state["step"]) for state in optimizer.state.values() if "step" in state]
    return max(steps, default=0)
