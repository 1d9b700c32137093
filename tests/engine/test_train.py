"""Tests of pinn.engine.train: history and validation, the schedules inside the loop, gradient
accumulation and clipping, the non-finite guard, precision and torch.compile."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from _engine_helpers import (ImageSet, ItemSet, assert_bitwise_equal, config, make_model,
                             mse_loss, strip_times, weights)
from pinn.engine import checkpoint as ckpt
from pinn.engine.resume import CHECKPOINT_NAME
from pinn.engine.train import TrainResult, train
from pinn.errors import ConfigError, TrainingError


@contextlib.contextmanager
def recorded_steps():
    """Record, at every optimiser step, the gradients about to be applied and the rate."""
    steps: list[dict] = []

    def hook(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        steps.append({"grads": [p.grad.detach().clone() for p in params],
                      "lr": optimizer.param_groups[0]["lr"]})

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


def grad_norm(step: dict) -> float:
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in step["grads"]])))


class Recorder:
    """Wraps a loss function; keeps each training call's loss, batch size and weights."""

    def __init__(self, loss_fn=mse_loss, poison: dict[int, str] | None = None) -> None:
        self.loss_fn, self.poison = loss_fn, poison or {}
        self.losses: list[float] = []
        self.sizes: list[int] = []
        self.before: list[dict[str, torch.Tensor]] = []  # weights before each training call
        self.eval_calls = 0

    def __call__(self, model, batch):
        if not model.training:
            self.eval_calls += 1
            return self.loss_fn(model, batch)
        self.before.append(weights(model))
        loss, metrics = self.loss_fn(model, batch)
        kind = self.poison.get(len(self.before))
        if kind == "nan":
            loss = loss * math.nan
        elif kind == "inf":
            loss = loss + math.inf
        elif kind == "grad":
            loss = PoisonGradient.apply(loss)
        self.losses.append(float(loss.detach()))
        self.sizes.append(len(next(iter(batch.values()))))
        return loss, metrics


class PoisonGradient(torch.autograd.Function):
    """Identity forward; NaN gradient backward (a finite loss with non-finite gradients)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * math.nan


# --- history and validation -------------------------------------------------------------------


def test_history_has_train_and_val_loss_and_rate():
    model = make_model(dropout=0.3)
    recorder = Recorder()
    val = ImageSet(6, seed=2)
    result = train(model, recorder, ImageSet(10), val, config(epochs=3), verbose=False)
    assert isinstance(result, TrainResult) and not result.stopped_early
    assert len(result.history) == 3
    for epoch, entry in enumerate(result.history, start=1):
        assert {"train_loss", "train_mae", "val_loss", "val_mae", "learning_rate",
                "epoch"} <= set(entry)
        assert entry["epoch"] == epoch and entry["learning_rate"] == 1e-2
    # train_loss: the item-weighted mean of the epoch's micro-batch losses (4 + 4 + 2 items)
    assert recorder.sizes == [4, 4, 2] * 3
    last = recorder.losses[-3:]
    assert result.history[-1]["train_loss"] == pytest.approx(
        (4 * last[0] + 4 * last[1] + 2 * last[2]) / 10, rel=1e-12)
    # val_loss: the final model in eval mode (dropout off) over the whole validation set
    model.eval()
    with torch.no_grad():
        expected = mse_loss(model, val.get_batch(torch.arange(6)))[0]
    assert result.history[-1]["val_loss"] == pytest.approx(float(expected), rel=1e-6)
    assert recorder.eval_calls == 3 * 2  # 6 validation items in batches of 4


def test_without_validation_set_history_has_no_val_entries():
    for val in (None, ImageSet(0)):
        result = train(make_model(), mse_loss, ImageSet(8), val, config(), verbose=False)
        assert all(not any(k.startswith("val_") for k in entry) for entry in result.history)


def test_items_without_get_batch_train_the_same():
    by_batch, by_item = make_model(dropout=0.2), make_model(dropout=0.2)
    first = train(by_batch, mse_loss, ImageSet(10), ImageSet(3), config(), verbose=False)
    second = train(by_item, mse_loss, ItemSet(10), ItemSet(3), config(), verbose=False)
    assert_bitwise_equal(weights(by_item), weights(by_batch))
    assert strip_times(second.history) == strip_times(first.history)


def test_loss_goes_down():
    result = train(make_model(), mse_loss, ImageSet(16), ImageSet(4), config(epochs=4),
                   verbose=False)
    losses = [entry["train_loss"] for entry in result.history]
    assert losses[-1] < 0.5 * losses[0]


def val_scripted(values):
    """A loss function whose validation loss is ``values[k]`` at the k-th evaluation."""
    calls = iter(values)

    def loss_fn(model, batch):
        loss, metrics = mse_loss(model, batch)
        if not model.training:
            return torch.tensor(next(calls)), metrics
        return loss, metrics

    return loss_fn


def test_plateau_follows_the_validation_loss():
    values = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    with recorded_steps() as steps:
        result = train(make_model(), val_scripted(values), ImageSet(8), ImageSet(2),
                       config(epochs=7, plateau_patience=2, min_learning_rate=3e-3),
                       verbose=False)
    rates = [entry["learning_rate"] for entry in result.history]
    # reduce after epoch 3 (two epochs without improvement), reset on the improvement of
    # epoch 4, reduce after epoch 6, then the floor of 3e-3
    assert rates == [1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 5e-3, 3e-3]
    assert [s["lr"] for s in steps] == [r for r in rates for _ in range(2)]  # 2 steps/epoch
    # meanwhile the training loss kept improving: it is not what the plateau watched
    train_losses = [entry["train_loss"] for entry in result.history]
    assert train_losses == sorted(train_losses, reverse=True)


def constant_loss(model, batch):
    """A loss that never changes and has zero gradients."""
    loss = model(batch["x"]).sum() * 0 + 1.0
    return loss, {}


def test_plateau_follows_the_training_loss_without_validation():
    result = train(make_model(), constant_loss, ImageSet(8), None,
                   config(epochs=4, plateau_patience=1), verbose=False)
    assert [e["learning_rate"] for e in result.history] == [1e-2, 1e-2, 5e-3, 2.5e-3]


def test_early_stopping_watches_the_training_loss(capsys):
    improving_val = val_scripted([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    calls = []

    def loss_fn(model, batch):
        calls.append(model.training)
        if model.training:
            return constant_loss(model, batch)
        return improving_val(model, batch)

    result = train(make_model(), loss_fn, ImageSet(8), ImageSet(2),
                   config(epochs=6, early_stopping_patience=2), verbose=True)
    # epoch 1 sets the best; epochs 2 and 3 do not beat it strictly -> stop after epoch 3
    assert result.stopped_early
    assert len(result.history) == 3
    assert calls.count(True) == 3 * 2
    assert "early stopping" in capsys.readouterr().err


def test_early_stopping_patience_zero_runs_every_epoch():
    result = train(make_model(), constant_loss, ImageSet(8), None,
                   config(epochs=5, early_stopping_patience=0), verbose=False)
    assert not result.stopped_early and len(result.history) == 5


# --- gradient accumulation and clipping -------------------------------------------------------


@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("n_train", [12, 10])  # 10: the last window holds 2 micro-batches
def test_accumulating_micro_batches_equals_one_large_batch(n_train, clip):
    runs = {}
    for name, batch, accumulation in (("accumulated", 2, 3), ("large", 6, 1)):
        model = make_model()
        with recorded_steps() as steps:
            result = train(model, mse_loss, ImageSet(n_train), ImageSet(4),
                           config(epochs=2, batch_size=batch, grad_accumulation=accumulation,
                                  grad_clip_norm=clip), verbose=False)
        runs[name] = (model, steps, result.history)
    (model_a, steps_a, hist_a), (model_b, steps_b, hist_b) = runs.values()
    assert len(steps_a) == len(steps_b) == 4
    for step_a, step_b in zip(steps_a, steps_b):
        for grad_a, grad_b in zip(step_a["grads"], step_b["grads"]):
            torch.testing.assert_close(grad_a, grad_b, rtol=1e-5, atol=1e-8)
    for key, value in model_b.state_dict().items():
        torch.testing.assert_close(model_a.state_dict()[key], value, rtol=1e-5, atol=1e-7)
    for entry_a, entry_b in zip(hist_a, hist_b):
        assert entry_a["train_loss"] == pytest.approx(entry_b["train_loss"], rel=1e-6)
        assert entry_a["val_loss"] == pytest.approx(entry_b["val_loss"], rel=1e-6)


def test_gradient_clipping_bounds_the_applied_gradient():
    with recorded_steps() as free:
        train(make_model(), mse_loss, ImageSet(12), None, config(), verbose=False)
    with recorded_steps() as clipped:
        train(make_model(), mse_loss, ImageSet(12), None, config(grad_clip_norm=0.01),
              verbose=False)
    assert min(grad_norm(s) for s in free) > 0.05  # clipping has something to do
    assert all(grad_norm(s) == pytest.approx(0.01, rel=1e-4) for s in clipped)
    # The first step sees the same gradient, only rescaled.
    scale = 0.01 / grad_norm(free[0])
    for grad_free, grad_clipped in zip(free[0]["grads"], clipped[0]["grads"]):
        torch.testing.assert_close(grad_clipped, grad_free * scale, rtol=1e-4, atol=1e-10)


def test_gradient_clipping_leaves_small_gradients_alone():
    with recorded_steps() as free:
        a = make_model()
        train(a, mse_loss, ImageSet(12), None, config(), verbose=False)
    with recorded_steps() as loose:
        b = make_model()
        train(b, mse_loss, ImageSet(12), None, config(grad_clip_norm=1e6), verbose=False)
    assert_bitwise_equal(weights(a), weights(b))
    assert len(free) == len(loose)


# --- the non-finite guard ---------------------------------------------------------------------


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("kind", ["nan", "inf", "grad"])
def test_non_finite_step_is_skipped_and_training_continues(kind, capsys, tmp_path):
    model = make_model()
    recorder = Recorder(poison={2: kind, 6: kind})
    result = train(model, recorder, ImageSet(16), None, config(epochs=2),
                   checkpoint_dir=tmp_path, verbose=True)
    after = recorder.before[1:] + [weights(model)]  # weights after each of the 8 steps
    for call, (before, now) in enumerate(zip(recorder.before, after), start=1):
        assert changed(before, now) is (call not in (2, 6)), f"step {call}"
    err = capsys.readouterr().err
    assert "non-finite loss or gradient at epoch 1 step 2; step skipped (1 in a row)" in err
    assert "non-finite loss or gradient at epoch 2 step 2; step skipped (1 in a row)" in err
    assert all(math.isfinite(e["train_loss"]) for e in result.history)
    # Adam took 6 steps, not 8: the skipped ones did not touch its moments either.
    tensors, _ = ckpt.load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert float(tensors["optimizer/0/step"]) == 6.0


def test_non_finite_micro_batch_skips_its_whole_window():
    model = make_model()
    recorder = Recorder(poison={3: "grad"})  # first micro-batch of the second window
    train(model, recorder, ImageSet(16), None,
          config(epochs=1, batch_size=2, grad_accumulation=2), verbose=False)
    w = recorder.before + [weights(model)]  # weights before calls 1..8, then final
    assert changed(w[0], w[2]) and changed(w[4], w[6]) and changed(w[6], w[8])
    assert not changed(w[2], w[4])  # window of calls 3 and 4: no step
    assert not changed(w[2], w[3]) and not changed(w[4], w[5])  # never mid-window


def test_too_many_non_finite_steps_in_a_row_raise():
    recorder = Recorder(poison={3: "nan", 4: "grad", 5: "inf"})
    with pytest.raises(TrainingError, match="3 non-finite losses or gradients in a row"):
        train(make_model(), recorder, ImageSet(16), None,
              config(epochs=3, max_nonfinite_steps=3), verbose=False)
    assert len(recorder.before) == 5  # raised at the third bad step in a row


def test_non_finite_steps_that_are_not_in_a_row_do_not_raise():
    recorder = Recorder(poison={2: "nan", 3: "nan", 5: "nan", 6: "nan"})
    result = train(make_model(), recorder, ImageSet(16), None,
                   config(epochs=2, max_nonfinite_steps=3), verbose=False)
    assert len(result.history) == 2


def test_non_finite_counter_survives_epoch_boundaries():
    recorder = Recorder(poison={4: "nan", 5: "nan"})  # last step of epoch 1, first of epoch 2
    with pytest.raises(TrainingError):
        train(make_model(), recorder, ImageSet(16), None,
              config(epochs=2, max_nonfinite_steps=2), verbose=False)


# --- precision and devices --------------------------------------------------------------------


def test_bf16_autocasts_the_model_on_cpu_and_keeps_float32_weights():
    seen = []

    def loss_fn(model, batch):
        seen.append(model(batch["x"]).dtype)
        return mse_loss(model, batch)

    model = make_model()
    result = train(model, loss_fn, ImageSet(8), ImageSet(2), config(precision="bf16"),
                   verbose=False)
    assert set(seen) == {torch.bfloat16}
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert all(math.isfinite(e["train_loss"]) and math.isfinite(e["val_loss"])
               for e in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_precision_off_does_not_autocast():
    seen = []

    def loss_fn(model, batch):
        seen.append(model(batch["x"]).dtype)
        return mse_loss(model, batch)

    train(make_model(), loss_fn, ImageSet(8), ImageSet(2), config(), verbose=False)
    assert set(seen) == {torch.float32}


def test_fp16_on_cpu_is_refused_before_training(tmp_path):
    recorder = Recorder()
    with pytest.raises(ConfigError, match="fp16.*CUDA.*bf16"):
        train(make_model(), recorder, ImageSet(8), None, config(precision="fp16"),
              checkpoint_dir=tmp_path, log_dir=tmp_path / "tb", verbose=False)
    assert recorder.before == [] and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train(make_model(), mse_loss, ImageSet(8), None, config(), device="cuda", verbose=False)


def test_bad_device_string_is_a_config_error():
    with pytest.raises(ConfigError, match="not a valid torch device"):
        train(make_model(), mse_loss, ImageSet(8), None, config(), device="gpu0", verbose=False)


# --- torch.compile ----------------------------------------------------------------------------


def test_compile_trains_and_checkpoints_the_unwrapped_module(tmp_path):
    kinds = set()

    def loss_fn(model, batch):
        kinds.add(type(model).__name__)
        return mse_loss(model, batch)

    eager = make_model()
    eager_result = train(eager, mse_loss, ImageSet(8), None, config(), verbose=False)
    model = make_model()
    keys = list(model.state_dict())
    result = train(model, loss_fn, ImageSet(8), None, config(compile=True),
                   checkpoint_dir=tmp_path, verbose=False)
    assert kinds == {"OptimizedModule"}  # the loss saw the compiled module
    assert list(model.state_dict()) == keys
    tensors, _ = ckpt.load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert not any("_orig_mod" in name for name in tensors)
    assert sorted(k for k in tensors if k.startswith("model/")) == sorted(
        f"model/{k}" for k in keys)
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-6)
    assert result.history[-1]["train_loss"] == pytest.approx(
        eager_result.history[-1]["train_loss"], rel=1e-4)

    # The checkpoint of the compiled run resumes into a plain (eager) run.
    resumed = make_model()
    more = train(resumed, mse_loss, ImageSet(8), None, config(epochs=3),
                 checkpoint_dir=tmp_path, resume=True, verbose=False)
    assert len(more.history) == 3
