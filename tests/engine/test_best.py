"""Tests of keep_best: a run ends with the weights of its best epoch, and after an epoch whose
loss jumped, training goes back to them at a lower rate (issue: a demo run's deviance jumped
1.86 -> 11.2 at epoch 55 and never recovered)."""

from __future__ import annotations

import pytest
import torch

from _engine_helpers import ImageSet, assert_bitwise_equal, config, make_model, mse_loss, weights
from pinn.engine.train import train

TRAIN, VAL = ImageSet(16), ImageSet(8, seed=2)  # 4 steps per epoch at batch 4


def spiking(at_call: int):
    """mse_loss that wrecks the weights (as a diverging step would) at the given training
    call, once; validation calls pass through."""
    calls = []

    def loss_fn(model, batch):
        if model.training:
            calls.append(1)
            if len(calls) == at_call:
                with torch.no_grad():
                    for parameter in model.parameters():
                        parameter.add_(3.0)
        return mse_loss(model, batch)

    return loss_fn


def val_loss(model) -> float:
    model.eval()
    with torch.no_grad():
        return float(mse_loss(model, VAL.get_batch(torch.arange(len(VAL))))[0])


def run(keep_best: bool, epochs: int = 7, spike_epoch: int = 5, **changes):
    model = make_model()
    result = train(model, spiking(4 * (spike_epoch - 1) + 2), TRAIN, VAL,
                   config(epochs=epochs, keep_best=keep_best, **changes), verbose=False)
    return model, result


def test_a_spike_is_rolled_back_and_the_run_ends_at_least_as_good_as_before_it():
    spoiled, plain = run(keep_best=False)
    kept, best = run(keep_best=True)
    before_spike = min(h["val_loss"] for h in plain.history[:4])
    assert plain.history[4]["val_loss"] > 10 * before_spike  # the spike is real
    assert val_loss(spoiled) > 2 * before_spike  # and without keep_best it is not recovered
    # with keep_best the spike sends training back to the best epoch at once, at half the rate
    assert best.history[4]["restored_epoch"] == 4.0
    assert [h["learning_rate"] for h in best.history][4:] == [1e-2, 5e-3, 5e-3]
    assert val_loss(kept) <= before_spike
    assert val_loss(kept) == pytest.approx(min(h["val_loss"] for h in best.history), rel=1e-5)


def test_the_run_ends_with_the_best_epochs_weights():
    """A spike in the last epoch (no plateau cut follows): the run ends with the weights of
    the best epoch, whose validation loss they give again."""
    model, result = run(keep_best=True, epochs=5, spike_epoch=5, schedule="cosine")
    assert result.history[-1]["val_loss"] > 10 * result.history[3]["val_loss"]
    assert result.restored_epoch == result.best_epoch == 4
    assert val_loss(model) == pytest.approx(result.history[3]["val_loss"], rel=1e-6)


def test_without_keep_best_the_last_weights_are_kept():
    model, result = run(keep_best=False, epochs=5, spike_epoch=5)
    assert result.restored_epoch is None
    assert result.history[-1]["val_loss"] == pytest.approx(val_loss(model), rel=1e-6)


def test_keep_best_changes_nothing_while_the_loss_improves():
    plain_model, plain = run(keep_best=False, epochs=3, spike_epoch=99)
    kept_model, kept = run(keep_best=True, epochs=3, spike_epoch=99)
    assert [h["val_loss"] for h in plain.history] == sorted(h["val_loss"] for h in plain.history)[::-1]
    assert kept.restored_epoch is None
    assert_bitwise_equal(weights(kept_model), weights(plain_model))


def test_noise_is_not_a_divergence():
    """Late epochs a little worse than the best do not send training back."""
    from pinn.engine.state import Best

    best = Best()
    for epoch, value in enumerate([10.0, 4.0, 2.0, 1.0, 1.2, 1.4], start=1):
        best.update(value, epoch)
    assert (best.first, best.value, best.epoch) == (10.0, 1.0, 4)
    assert not best.diverged(1.4) and not best.diverged(9.9)  # not above the first epoch's
    assert best.diverged(10.1) and best.diverged(float("nan"))
    shifted = Best()  # the test does not depend on the loss's offset or sign
    for epoch, value in enumerate([-90.0, -96.0, -99.0], start=1):
        shifted.update(value, epoch)
    assert not shifted.diverged(-90.1) and shifted.diverged(-89.9)
    assert not Best().diverged(5.0)  # nothing to compare with yet


class _Constant(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))


def test_noise_before_any_progress_is_not_a_divergence():
    # validation losses: 2.0 untrained; 0.99 and 1.01 for the first two epochs (a network
    # still giving a flat object: noise around the flat object's loss); then learning. With
    # the first epoch's 0.99 as the start, 1.01 counted as a divergence (rolled back, rate
    # halved); against the untrained 2.0 it is noise
    values = iter([2.0, 0.99, 1.01, 0.5, 0.3])

    def loss_fn(model, batch):
        return model.w * 0 + (1.0 if model.training else next(values)), {}

    result = train(_Constant(), loss_fn, TRAIN, VAL,
                   config(epochs=4, keep_best=True, batch_size=16), verbose=False)
    assert [h["val_loss"] for h in result.history] == pytest.approx([0.99, 1.01, 0.5, 0.3])
    assert all("restored_epoch" not in h for h in result.history)
    assert result.history[2]["learning_rate"] == result.history[0]["learning_rate"]
