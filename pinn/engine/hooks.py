"""What a trained module may tell the engine, beyond its parameters (all optional).

The engine trains any ``nn.Module``. A module that needs more than one learning rate or work
between steps defines any of these methods; the engine calls them and knows nothing else of
the module:

- ``optimizer_groups() -> list[dict]``: Adam parameter groups, each ``{"params": [...],
  "lr_scale": float, ...}``. A group's learning rate is the schedule's rate times its
  ``lr_scale`` (1 when absent); any other key is an Adam option of the group (e.g.
  ``betas``). Without it, all parameters form one group.
- ``on_epoch_start(epoch: int) -> None``: called before each epoch (0-based), also on resume,
  so what it switches on must depend on ``epoch`` alone (e.g. a warm-up).
- ``after_step() -> None``: called under ``torch.no_grad()`` after every optimiser step that was
  taken (e.g. a projection onto a constraint).
"""

from __future__ import annotations

import torch
from torch import nn


def optimizer_groups(model: nn.Module) -> list[dict]:
    """The module's parameter groups, or one group of every parameter."""
    groups = getattr(model, "optimizer_groups", None)
    if groups is None:
        return [{"params": [p for p in model.parameters()], "lr_scale": 1.0}]
    return [dict(group, lr_scale=float(group.get("lr_scale", 1.0))) for group in groups()]


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's rate: ``lr`` times the group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def on_epoch_start(model: nn.Module, epoch: int) -> None:
    hook = getattr(model, "on_epoch_start", None)
    if hook is not None:
        hook(epoch)


def after_step(model: nn.Module) -> None:
    hook = getattr(model, "after_step", None)
    if hook is not None:
        with torch.no_grad():
            hook()
