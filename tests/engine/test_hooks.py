"""The optional module hooks of the engine: parameter groups, epoch start, after step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pinn.config import TrainingConfig
from pinn.engine.schedule import cosine_lr
from pinn.engine.train import train


class _Data:
    def __init__(self, n: int = 8) -> None:
        self.x = torch.linspace(-1, 1, n).reshape(n, 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i]}


def _loss(model, batch):
    loss = ((model.a - 1.0 + 0 * batch["x"]) ** 2 + (model.b - 1.0) ** 2).mean()
    return loss, {}


class _Hooked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))
        self.epochs_started: list[int] = []
        self.steps = 0

    def optimizer_groups(self):
        return [{"params": [self.a], "lr_scale": 1.0}, {"params": [self.b], "lr_scale": 0.0}]

    def on_epoch_start(self, epoch: int) -> None:
        self.epochs_started.append(epoch)

    def after_step(self) -> None:
        assert not torch.is_grad_enabled()
        self.steps += 1
        self.a.clamp_(max=0.05)


def test_groups_scale_the_rate_and_hooks_run():
    model = _Hooked()
    config = TrainingConfig(epochs=3, batch_size=4, validation_fraction=0.0, learning_rate=0.1,
                            early_stopping_patience=0)
    train(model, _loss, _Data(), None, config, verbose=False)
    assert model.b.item() == 0.0  # its group's rate is 0
    assert model.a.item() == pytest.approx(0.05)  # moved, then projected by after_step
    assert model.epochs_started == [0, 1, 2]
    assert model.steps == 6  # 2 steps per epoch


def test_cosine_schedule_decays_to_the_floor():
    assert cosine_lr(1.0, 0.1, 0, 10) == 1.0
    assert cosine_lr(1.0, 0.1, 5, 10) == pytest.approx(0.55)
    assert cosine_lr(1.0, 0.1, 10, 10) == pytest.approx(0.1)
    model = nn.Linear(1, 1)
    config = TrainingConfig(epochs=4, batch_size=4, validation_fraction=0.0, learning_rate=0.1,
                            min_learning_rate=0.01, schedule="cosine",
                            early_stopping_patience=0)
    result = train(model, lambda m, b: (((m(b["x"]) - 1) ** 2).mean(), {}), _Data(), None,
                   config, verbose=False)
    rates = [h["learning_rate"] for h in result.history]
    expected = [cosine_lr(0.1, 0.01, e, 4) for e in range(4)]
    assert rates == pytest.approx(expected)
    assert all(math.isfinite(r) for r in rates)


def test_adams_step_count_is_the_largest_whatever_the_state_order():
    """A parameter that joined later (a warm-up) has fewer steps; a restored optimiser may list
    it first. The Keras epsilon must follow the number of updates taken, not dict order."""
    from pinn.engine.optim import adam_steps_taken

    early, late = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([early, late], lr=0.1)
    for step in range(3):
        early.grad = torch.ones(2)
        late.grad = torch.ones(2) if step == 2 else None
        optimizer.step()
    assert adam_steps_taken(optimizer) == 3
    state = optimizer.state_dict()
    state["state"] = dict(reversed(list(state["state"].items())))  # the late one first
    restored = torch.optim.Adam([early, late], lr=0.1)
    restored.load_state_dict(state)
    assert next(iter(restored.state.values()))["step"] == 1
    assert adam_steps_taken(restored) == 3


class _Pair(nn.Module):
    def __init__(self, groups: list[dict] | None = None) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))
        self._options = groups

    def optimizer_groups(self):
        return [dict(option, params=[p]) for option, p in zip(self._options, (self.a, self.b))]


def _by_hand(betas_a: tuple[float, float], betas_b: tuple[float, float], lr: float,
             steps: int) -> tuple[float, float]:
    """The same four Adam steps on _loss, with torch's Adam and the engine's epsilon."""
    from pinn.engine.optim import keras_adam_eps

    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [a], "betas": betas_a},
                                  {"params": [b], "betas": betas_b}], lr=lr)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        ((a - 1.0) ** 2 + (b - 1.0) ** 2).sum().backward()
        for group in optimizer.param_groups:
            group["eps"] = keras_adam_eps(step, beta2=group["betas"][1])
        optimizer.step()
    return a.item(), b.item()


def test_each_groups_epsilon_follows_its_own_second_moment_decay(monkeypatch):
    """Keras adds 1e-7 to the uncorrected sqrt(v); torch's equivalent epsilon divides it by
    sqrt(1 - beta2**t) with the beta2 of the group being updated, not a fixed 0.999."""
    from pinn.engine.optim import keras_adam_eps

    config = TrainingConfig(epochs=2, batch_size=4, validation_fraction=0.0, learning_rate=0.1,
                            early_stopping_patience=0, adam_beta2=0.5)
    model = _Pair([{}, {"betas": (0.9, 0.99)}])
    seen = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen.append([(group["betas"][1], group["eps"]) for group in self.param_groups])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    train(model, _loss, _Data(), None, config, verbose=False)  # 2 steps per epoch
    assert len(seen) == 4
    for t, groups in enumerate(seen, start=1):
        assert [beta2 for beta2, _ in groups] == [0.5, 0.99]
        for beta2, eps in groups:
            assert eps == pytest.approx(1e-7 / math.sqrt(1 - beta2**t), rel=1e-12)
    assert keras_adam_eps(1, beta2=0.5) == pytest.approx(1e-7 / math.sqrt(0.5))


def test_adam_second_moment_decay_is_the_configs_unless_a_group_sets_its_own():
    config = TrainingConfig(epochs=2, batch_size=4, validation_fraction=0.0, learning_rate=0.1,
                            early_stopping_patience=0, adam_beta2=0.5)
    model = _Pair([{}, {"betas": (0.9, 0.99)}])
    train(model, _loss, _Data(), None, config, verbose=False)  # 2 steps per epoch
    a, b = _by_hand((0.9, 0.5), (0.9, 0.99), 0.1, 4)
    assert (model.a.item(), model.b.item()) == pytest.approx((a, b), abs=1e-7)
    default = _Pair([{}, {}])
    train(default, _loss, _Data(), None,
          TrainingConfig(**{**config.__dict__, "adam_beta2": 0.999}), verbose=False)
    assert default.a.item() == pytest.approx(_by_hand((0.9, 0.999), (0.9, 0.999), 0.1, 4)[0],
                                             abs=1e-7)
    assert abs(default.a.item() - model.a.item()) > 1e-4  # the decay made a difference


@pytest.mark.parametrize("beta2", [0.0, 1.0, -0.5])
def test_adam_second_moment_decay_outside_0_1_is_refused(beta2):
    from pinn.errors import ConfigError

    with pytest.raises(ConfigError, match="adam_beta2"):
        TrainingConfig(adam_beta2=beta2)
