"""Tests of the time budget (``max_time_s``): training stops cleanly at the budget with a
checkpoint as at a normal end, the cosine decay is planned over the budget (not cut off), and
a run stopped by its budget resumes with a larger one."""

from __future__ import annotations

import time

import pytest
import torch

from _engine_helpers import ImageSet, config, make_model, mse_loss
from pinn.engine.resume import read_training_state
from pinn.engine.schedule import cosine_lr
from pinn.engine.train import train
from test_train import recorded_steps

STEP_S = 0.04  # each training call sleeps this long: the budget, not the CPU, sets the pace
#: How far past its budget a run may end: it stops when another step and the epoch's end
#: would overrun, as estimated from the steps so far (generous: the machine is shared).
SLACK_S = 1.0


def slow_loss(model, batch):
    if model.training:
        time.sleep(STEP_S)
    return mse_loss(model, batch)


def budgeted(tmp_path, budget_s: float, resume: bool = False, **changes):
    model = make_model()
    with recorded_steps() as steps:
        result = train(model, slow_loss, ImageSet(40), ImageSet(4),
                       config(**{"epochs": None, "max_time_s": budget_s,
                                 "schedule": "cosine", **changes}),
                       checkpoint_dir=tmp_path, resume=resume, verbose=False)
    return model, result, [s["lr"] for s in steps]


def test_stops_at_the_budget_with_the_decay_planned_over_it(tmp_path):
    started = time.perf_counter()
    _, result, rates = budgeted(tmp_path, 2.0)
    wall = time.perf_counter() - started
    assert result.stop_reason == "max_time"
    assert result.elapsed_s <= 2.0 + SLACK_S and wall < 2.0 + 3.0
    assert len(rates) >= 5
    # the rate follows the cosine over the budget: from the start to near the floor
    assert rates[0] == pytest.approx(1e-2, rel=1e-3)
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < cosine_lr(1e-2, 1e-4, 0.7, 1)  # the decay was not cut off half-way
    # the epoch the budget cut short is closed as a normal one, and checkpointed
    last = result.history[-1]
    assert 0 < last.get("epoch_fraction", 1.0) <= 1.0 and "val_loss" in last
    state = read_training_state(tmp_path)
    assert state.stop_reason == "max_time" and state.step == 0
    assert state.epoch == len(result.history)


def test_epochs_end_a_budgeted_run_when_they_come_first(tmp_path):
    _, result, rates = budgeted(tmp_path, 60.0, epochs=1)
    assert result.stop_reason == "epochs" and len(result.history) == 1
    # the plan is the larger fraction: epoch 0 of 1 and a few seconds of 60, near the start
    assert rates[-1] == pytest.approx(1e-2, rel=0.05)


def test_a_budgeted_run_resumes_with_a_larger_budget(tmp_path):
    _, first, _ = budgeted(tmp_path, 1.0)
    again = budgeted(tmp_path, 1.0, resume=True)[1]  # the same budget: nothing more to do
    assert len(again.history) == len(first.history) and again.stop_reason == "max_time"
    _, more, rates = budgeted(tmp_path, 2.5, resume=True)
    assert more.stop_reason == "max_time"
    assert len(more.history) > len(first.history)
    assert more.changes == [{"epoch": len(first.history), "field": "max_time_s", "old": 1.0,
                             "new": 2.5}]
    assert more.elapsed_s <= 2.5 + SLACK_S
    # re-planned: the rate goes back up to where 1 s of a 2.5 s plan is, then decays
    assert rates[0] > 1e-3 and rates[-1] < rates[0]


def test_the_budget_counts_over_interruptions(tmp_path):
    """An interrupted budgeted run resumed with the same budget trains only the rest."""
    import os
    import signal

    calls = []

    def interrupting(model, batch):
        if model.training:
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return slow_loss(model, batch)

    from pinn.engine.train import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        train(make_model(), interrupting, ImageSet(40), ImageSet(4),
              config(epochs=None, max_time_s=2.0, schedule="cosine"),
              checkpoint_dir=tmp_path, verbose=False)
    spent = read_training_state(tmp_path).elapsed_s
    assert 3 * STEP_S <= spent < 2.0
    _, result, _ = budgeted(tmp_path, 2.0, resume=True)
    assert result.stop_reason == "max_time" and result.elapsed_s <= 2.0 + SLACK_S
    assert torch.isfinite(torch.tensor(result.history[-1]["train_loss"]))
