"""Tests of pinn.engine.progress as the training loop uses it: TensorBoard event files with
the step and epoch scalars and preview images, and the console progress line."""

from __future__ import annotations

import io
import sys
import types

import pytest
import torch

from _engine_helpers import ImageSet, child_env, config, make_model, mse_loss, run
from pinn.engine.progress import ConsoleProgress, TensorBoard, format_duration
from pinn.engine.train import train


def run_directory(log_dir):
    """The one run directory ``log_dir/<run id>/`` that training wrote."""
    runs = [p for p in log_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_events(log_dir):
    """The events of the one run logged into ``log_dir``."""
    return read_run_events(run_directory(log_dir))


def read_run_events(directory):
    # Read with TensorBoard's own stub rather than TensorFlow (installed for tests/parity).
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def preview(model):
    weight = model.conv1.weight.detach()
    return {"preview/kernel": weight[0, 0], "preview/flat": torch.zeros(5, 7)}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb")
    model = make_model()
    result = train(model, mse_loss, ImageSet(10), ImageSet(4), config(epochs=3),
                   log_dir=log_dir, preview=preview, items_per_sample=4, verbose=False)
    return read_events(log_dir), result.history


def test_step_scalars(logged):
    events, _ = logged
    tags = set(events.Tags()["scalars"])
    step_tags = {"train/loss_step", "train/grad_norm", "train/patterns_per_s",
                 "train/learning_rate"}
    assert step_tags <= tags
    for tag in step_tags:
        values = events.Scalars(tag)
        assert [v.step for v in values] == list(range(1, 10))  # 3 steps x 3 epochs
    assert all(v.value > 0 for v in events.Scalars("train/grad_norm"))
    assert all(v.value > 0 for v in events.Scalars("train/patterns_per_s"))
    assert all(v.value == pytest.approx(1e-2) for v in events.Scalars("train/learning_rate"))


def test_epoch_scalars_match_the_history(logged):
    events, history = logged
    for key in ("train_loss", "train_mae", "val_loss", "val_mae", "learning_rate", "seconds"):
        values = events.Scalars(f"epoch/{key}")
        assert [v.step for v in values] == [1, 2, 3]
        assert [v.value for v in values] == pytest.approx([e[key] for e in history], rel=1e-6)
    assert "epoch/epoch" not in events.Tags()["scalars"]


def test_preview_images_each_epoch(logged):
    events, _ = logged
    assert set(events.Tags()["images"]) == {"preview/kernel", "preview/flat"}
    kernels = events.Images("preview/kernel")
    assert [image.step for image in kernels] == [1, 2, 3]
    assert (kernels[0].height, kernels[0].width) == (3, 3)
    flat = events.Images("preview/flat")[0]
    assert (flat.height, flat.width) == (5, 7)  # a constant image is logged as zeros


@pytest.mark.parametrize("with_preview, log_images", [(False, True), (True, False)])
def test_no_images_without_preview_or_when_disabled(tmp_path, with_preview, log_images):
    train(make_model(), mse_loss, ImageSet(8), None, config(epochs=1, log_images=log_images),
          log_dir=tmp_path, preview=preview if with_preview else None, verbose=False)
    events = read_events(tmp_path)
    assert events.Tags()["images"] == []
    assert "epoch/train_loss" in events.Tags()["scalars"]


def test_no_log_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # SummaryWriter's default would be ./runs
    train(make_model(), mse_loss, ImageSet(8), None, config(epochs=1), preview=preview,
          verbose=False)
    assert list(tmp_path.iterdir()) == []


TRAIN_WITH_LOG_DIR = """
import sys
from _engine_helpers import ImageSet, config, make_model, mse_loss
from pinn.engine.train import train
train(make_model(), mse_loss, ImageSet(8), None, config(epochs=1), log_dir=sys.argv[1],
      verbose=False)
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_logging_does_not_import_tensorflow(tmp_path):
    done = run(["-c", TRAIN_WITH_LOG_DIR, str(tmp_path)], child_env())
    assert done.returncode == 0, done.stderr
    assert "tensorflow imported: False" in done.stdout
    assert list(tmp_path.glob("*/events.out.tfevents.*"))


def test_each_run_logs_apart_and_a_resumed_run_continues_its_own(tmp_path):
    logs, checkpoints = tmp_path / "tb", tmp_path / "ckpt"
    train(make_model(), mse_loss, ImageSet(8), None, config(epochs=1), log_dir=logs,
          checkpoint_dir=checkpoints / "a", verbose=False)
    first = run_directory(logs)
    train(make_model(), mse_loss, ImageSet(8), None, config(epochs=1), log_dir=logs,
          checkpoint_dir=checkpoints / "b", verbose=False)
    runs = sorted(p for p in logs.iterdir())
    assert len(runs) == 2 and first in runs  # a second run (even in the same second) apart
    train(make_model(), mse_loss, ImageSet(8), None, config(epochs=2), log_dir=logs,
          checkpoint_dir=checkpoints / "a", resume=True, verbose=False)
    assert sorted(p for p in logs.iterdir()) == runs
    events = read_run_events(first)
    assert [v.step for v in events.Scalars("epoch/train_loss")] == [1, 2]


def test_tensorboard_wrapper_without_directory_is_inert():
    board = TensorBoard(None)
    board.scalars({"a": 1.0}, 1)
    board.images({"b": torch.ones(2, 2)}, 1)
    board.close()
    assert board.writer is None


def test_format_duration():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(float("inf")) == "?"
    assert format_duration(float("nan")) == "?"


def test_console_progress_lines():
    stream = io.StringIO()
    progress = ConsoleProgress(5, stream=stream, interval=0.0)
    progress.step(0, 3, 10, 0.123456, 250.0, 65.0)
    progress.epoch(0, {"train_loss": 0.5, "learning_rate": 1e-3}, 2.04)
    progress.message("note")
    lines = stream.getvalue().splitlines()
    assert lines == ["epoch 1/5  step 3/10  loss 0.123456  250 patterns/s  ETA 0:01:05",
                     "epoch 1/5  train_loss 0.5  learning_rate 0.001  2.0s", "note"]


def test_console_progress_rate_limits_steps_but_not_epochs():
    stream = io.StringIO()
    progress = ConsoleProgress(2, stream=stream, interval=3600.0)
    for step in range(1, 6):
        progress.step(0, step, 5, 1.0, 1.0, 1.0)
    progress.epoch(0, {"train_loss": 1.0}, 1.0)
    assert len(stream.getvalue().splitlines()) == 2  # the first step line and the epoch line


def test_console_progress_disabled_prints_nothing():
    stream = io.StringIO()
    progress = ConsoleProgress(2, stream=stream, interval=0.0, enabled=False)
    progress.step(0, 1, 2, 1.0, 1.0, 1.0)
    progress.epoch(0, {"train_loss": 1.0}, 1.0)
    progress.message("x")
    assert stream.getvalue() == ""


def test_console_progress_rewrites_the_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = ConsoleProgress(1, stream=stream, interval=0.0)
    progress.step(0, 1, 2, 1.0, 1.0, 1.0)
    progress.epoch(0, {"train_loss": 1.0}, 1.0)
    text = stream.getvalue()
    assert text.startswith("\r\033[K") and text.count("\n") == 1 and text.endswith("\n")
