"""Exact resume: kill a training process for real (SIGKILL, SIGTERM, SIGINT) at chosen points,
resume it in a new process, and get the weights, optimiser state, RNG state and history of an
uninterrupted run, bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from _engine_helpers import (HERE, PYTHON, REPO, ImageSet, TinyNet, assert_bitwise_equal,
                             child_env, comparable_state, config, load_result, make_model,
                             mse_loss, run, strip_times, weights)
from _train_child import STEPS_PER_EPOCH
from pinn.atomic import TEMP_SUFFIX
from pinn.engine import checkpoint as ckpt
from pinn.engine.resume import CHECKPOINT_NAME
from pinn.engine.resume import read_training_state
from pinn.engine.schedule import cosine_lr
from pinn.engine.train import TrainingInterrupted, train
from pinn.errors import ArchiveError, ConfigError

CHILD = str(HERE / "_train_child.py")
TIMEOUT_S = 180


class Run:
    """Paths of one child run: ``root/ckpt/last.safetensors``, ``root/result.safetensors``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.checkpoint_dir = root / "ckpt"
        self.checkpoint = self.checkpoint_dir / CHECKPOINT_NAME
        self.result = root / "result.safetensors"

    def args(self, resume: bool = False) -> list[str]:
        return [CHILD, str(self.checkpoint_dir), str(self.result)] + (["--resume"] * resume)

    def temporaries(self) -> list[str]:
        return sorted(p.name for p in self.checkpoint_dir.glob(f"*{TEMP_SUFFIX}"))

    def start_paused(self, resume: bool = False, **hook: str) -> subprocess.Popen:
        """Start a child with a pause hook and wait until it is paused at the hook."""
        for marker in ("paused", "release"):
            (self.root / marker).unlink(missing_ok=True)
        proc = subprocess.Popen([PYTHON, *self.args(resume)], env=child_env(**hook), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + TIMEOUT_S
        while not (self.root / "paused").exists():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"child exited ({proc.returncode}) before pausing:\n{err}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("child did not reach the pause point")
            time.sleep(0.05)
        return proc

    def kill(self, resume: bool = False, **hook: str) -> None:
        """SIGKILL a child at its pause point."""
        proc = self.start_paused(resume, **hook)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == -signal.SIGKILL

    def stop(self, signum: int, resume: bool = False, **hook: str) -> str:
        """Send ``signum`` to a child at its pause point, let it go on; returns its stderr."""
        proc = self.start_paused(resume, **hook)
        proc.send_signal(signum)
        (self.root / "release").touch()
        _, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 3, err  # TrainingInterrupted
        return err

    def loop_state(self):
        return read_training_state(self.checkpoint)

    def resume(self) -> subprocess.CompletedProcess:
        done = run(self.args(resume=True), child_env(), timeout=TIMEOUT_S)
        assert done.returncode == 0, done.stderr
        return done


def checkpoint_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = ckpt.load_checkpoint(path)
    state = comparable_state(read_training_state(path))
    return tensors, {"state": state, "optimizer": meta["optimizer"],
                     "best_optimizer": meta["state"].get("best_optimizer")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Run:
    """One uninterrupted run."""
    ref = Run(tmp_path_factory.mktemp("reference"))
    done = run(ref.args(), child_env(), timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return ref


def assert_same_as_reference(resumed: Run, reference: Run) -> None:
    weights, history = load_result(resumed.result)
    ref_weights, ref_history = load_result(reference.result)
    assert_bitwise_equal(weights, ref_weights)
    assert strip_times(history) == strip_times(ref_history)
    assert len(history) == 4
    # The final checkpoints agree too: optimiser moments, RNG state, schedule, sums.
    tensors, meta = checkpoint_state(resumed.checkpoint)
    ref_tensors, ref_meta = checkpoint_state(reference.checkpoint)
    assert_bitwise_equal(tensors, ref_tensors)
    assert meta == ref_meta
    assert resumed.temporaries() == []


def test_reference_run_is_meaningful(reference):
    """The scenario exercises what resume must restore: the rate changes, dropout draws."""
    _, history = load_result(reference.result)
    assert [entry["learning_rate"] for entry in history] == [2e-2, 2e-2, 1e-2, 5e-3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert len({entry["val_mae"] for entry in history}) == 4
    weights, _ = load_result(reference.result)
    assert not torch.equal(weights["conv1.weight"], make_model(7, dropout=0.3).conv1.weight)


def test_killed_and_interrupted_five_times_ends_bitwise_equal(tmp_path, reference):
    """One run, stopped at every kind of point in turn, each time resumed in a new process.

    Pause-point call counts restart in each new process, which resumes at the start of an
    epoch (after SIGKILL) or at the checkpointed step (after SIGTERM/SIGINT).
    """
    chain = Run(tmp_path)
    # 1. SIGKILL half-way through writing the very first checkpoint: nothing to resume from.
    chain.kill(PINN_TEST_PAUSE_IN_WRITE="1")
    assert len(chain.temporaries()) == 1, "the kill did not land inside the write"
    assert not chain.checkpoint.exists()

    # 2. SIGKILL before the first forward of epoch 2, once the epoch-1 checkpoint exists
    #    (started afresh: there was nothing to resume).
    chain.kill(PINN_TEST_PAUSE_AT_CALL=str(STEPS_PER_EPOCH + 1))
    assert chain.temporaries() == []  # the stale one was cleaned up at start
    assert (chain.loop_state().epoch, chain.loop_state().step) == (1, 0)

    # 3. SIGKILL mid-epoch 3 (the run resumed at the start of epoch 2).
    chain.kill(resume=True, PINN_TEST_PAUSE_AT_CALL=str(STEPS_PER_EPOCH + 4))
    assert (chain.loop_state().epoch, chain.loop_state().step) == (2, 0)

    # 4. SIGKILL half-way through writing the epoch-3 checkpoint: epoch 2's stays intact.
    chain.kill(resume=True, PINN_TEST_PAUSE_IN_WRITE="1")
    assert len(chain.temporaries()) == 1
    assert (chain.loop_state().epoch, chain.loop_state().step) == (2, 0)

    # 5. SIGINT in the first micro-batch of epoch 3's second window: the window is finished,
    #    a mid-epoch checkpoint written, TrainingInterrupted raised.
    err = chain.stop(signal.SIGINT, resume=True, PINN_TEST_PAUSE_AT_CALL="3")
    assert "interrupted at epoch 3, step 4" in err
    assert chain.temporaries() == []
    assert (chain.loop_state().epoch, chain.loop_state().step) == (2, 4)

    # 6. Resume to the end.
    chain.resume()
    assert_same_as_reference(chain, reference)


def test_sigterm_saves_mid_epoch_and_resumes_bitwise_exact(tmp_path, reference):
    interrupted = Run(tmp_path)
    # SIGTERM arrives during the first micro-batch of the second accumulation window of
    # epoch 2 (call 10 = epoch 2, micro-batch 3); the run finishes that window and stops.
    err = interrupted.stop(signal.SIGTERM, PINN_TEST_PAUSE_AT_CALL=str(STEPS_PER_EPOCH + 3))
    assert "TrainingInterrupted: training interrupted at epoch 2, step 4" in err
    assert f"checkpoint saved to {interrupted.checkpoint}" in err
    assert not interrupted.result.exists()
    assert interrupted.temporaries() == []

    loop = interrupted.loop_state()
    assert (loop.epoch, loop.step) == (1, 4)
    assert len(loop.history) == 1
    assert loop.items == 12.0  # four micro-batches of 3 so far in epoch 2

    interrupted.resume()
    assert_same_as_reference(interrupted, reference)


@pytest.mark.slow
@pytest.mark.parametrize("where, hook, expected_epoch", [
    ("after first checkpoint", {"PINN_TEST_PAUSE_AT_CALL": str(STEPS_PER_EPOCH + 1)}, 1),
    ("mid-epoch", {"PINN_TEST_PAUSE_AT_CALL": str(2 * STEPS_PER_EPOCH + 4)}, 2),
    ("during checkpoint write", {"PINN_TEST_PAUSE_IN_WRITE": "2"}, 1),
    ("during first checkpoint write", {"PINN_TEST_PAUSE_IN_WRITE": "1"}, None),
])
def test_single_sigkill_then_resume_is_bitwise_exact(tmp_path, reference, where, hook,
                                                      expected_epoch):
    """Each kill point of the chain above on its own (for diagnosis)."""
    interrupted = Run(tmp_path)
    interrupted.kill(**hook)
    assert len(interrupted.temporaries()) == (1 if "write" in where else 0)
    if expected_epoch is None:
        assert not interrupted.checkpoint.exists()
        done = run(interrupted.args(), child_env(), timeout=TIMEOUT_S)  # start again
        assert done.returncode == 0, done.stderr
    else:
        loop = interrupted.loop_state()
        assert (loop.epoch, loop.step) == (expected_epoch, 0)
        interrupted.resume()
    assert_same_as_reference(interrupted, reference)


@pytest.mark.slow
def test_sigint_saves_mid_epoch_and_resumes_bitwise_exact(tmp_path, reference):
    interrupted = Run(tmp_path)
    err = interrupted.stop(signal.SIGINT, PINN_TEST_PAUSE_AT_CALL=str(STEPS_PER_EPOCH + 3))
    assert "interrupted at epoch 2, step 4" in err
    interrupted.resume()
    assert_same_as_reference(interrupted, reference)


# --- in-process checks of what resume refuses -------------------------------------------------


def one_epoch(tmp_path: Path, run_info, epochs: int = 1, **kwargs):
    model = make_model()
    return model, train(model, mse_loss, ImageSet(8), None, config(epochs=epochs),
                        checkpoint_dir=tmp_path, run_info=run_info, verbose=False, **kwargs)


def test_resume_with_another_run_info_is_refused(tmp_path):
    one_epoch(tmp_path, {"config": {"lr": 1e-3}})
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(ConfigError, match=r"run_info\.config\.lr was 0\.001, now 0\.002"):
        one_epoch(tmp_path, {"config": {"lr": 2e-3}}, epochs=2, resume=True)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_run_info_is_compared_as_json(tmp_path):
    """Tuples come back from the checkpoint as lists; that is the same run."""
    one_epoch(tmp_path, {"shape": (8, 1, 8, 8)})
    _, result = one_epoch(tmp_path, {"shape": (8, 1, 8, 8)}, epochs=2, resume=True)
    assert len(result.history) == 2


def test_run_info_that_is_not_json_is_refused_before_training(tmp_path):
    calls = []

    def loss_fn(model, batch):
        calls.append(1)
        return mse_loss(model, batch)

    with pytest.raises(ConfigError, match="run_info"):
        train(make_model(), loss_fn, ImageSet(8), None, config(), checkpoint_dir=tmp_path,
              run_info={"device": torch.device("cpu")}, verbose=False)
    assert calls == []


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_resume_from_a_damaged_checkpoint_is_refused(tmp_path, damage):
    one_epoch(tmp_path, None)
    path = tmp_path / CHECKPOINT_NAME
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) - 100]
    else:
        data[-50] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt"):
        one_epoch(tmp_path, None, epochs=2, resume=True)


def test_resume_into_another_model_is_refused(tmp_path):
    one_epoch(tmp_path, None)
    with pytest.raises(ArchiveError, match="does not match"):
        train(TinyNet(width=6), mse_loss, ImageSet(8), None, config(epochs=2),
              checkpoint_dir=tmp_path, resume=True, verbose=False)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    model, first = one_epoch(tmp_path, None, epochs=2)
    again, second = one_epoch(tmp_path, None, epochs=2, resume=True)
    assert_bitwise_equal(again.state_dict(), model.state_dict())
    assert strip_times(second.history) == strip_times(first.history)


def val_scripted(values):
    """mse_loss whose validation loss is ``values[k]`` at the k-th evaluation."""
    calls = iter(values)

    def loss_fn(model, batch):
        loss, metrics = mse_loss(model, batch)
        return (loss if model.training else torch.tensor(next(calls))), metrics

    return loss_fn


# The validation loss of the untrained model (a fresh run measures it before its first step),
# then of epochs 1-4: epoch 3 is worse than the start (a divergence), so training goes back to
# epoch 2's weights at half the rate (keep_best); epoch 4 is a plateau (patience 1).
START = 1.1
VALUES = [1.0, 0.5, 1.2, 0.8]


def extendable(tmp_path: Path, epochs: int, values, resume: bool = False, **changes):
    model = make_model(dropout=0.3)
    result = train(model, val_scripted(values), ImageSet(8), ImageSet(2),
                   config(epochs=epochs, plateau_patience=1, keep_best=True, **changes),
                   checkpoint_dir=tmp_path, resume=resume, verbose=False)
    return model, result


def test_extending_a_finished_run_equals_a_longer_run(tmp_path):
    """A 2-epoch run extended to 4 epochs with resume ends as a 4-epoch run: the same final
    (best) weights, the same last weights, optimiser, best snapshot and RNG in the checkpoint,
    the same history; the extension is recorded in the run's changes."""
    longer, full = extendable(tmp_path / "a", 4, [START] + VALUES)
    assert [h.get("restored_epoch") for h in full.history] == [None, None, 2.0, None]
    assert full.restored_epoch == 2
    extendable(tmp_path / "b", 2, [START] + VALUES[:2])
    extended, result = extendable(tmp_path / "b", 4, VALUES[2:], resume=True)

    assert_bitwise_equal(weights(extended), weights(longer))
    assert strip_times(result.history) == strip_times(full.history)
    assert result.changes == [{"epoch": 2, "field": "epochs", "old": 2, "new": 4}]
    tensors, meta = checkpoint_state(tmp_path / "b" / CHECKPOINT_NAME)
    ref_tensors, ref_meta = checkpoint_state(tmp_path / "a" / CHECKPOINT_NAME)
    assert_bitwise_equal(tensors, ref_tensors)
    assert meta["state"].pop("changes") == result.changes
    assert ref_meta["state"].pop("changes") == []
    assert meta == ref_meta


def test_extending_an_interrupted_run_equals_a_longer_run(tmp_path):
    longer, full = extendable(tmp_path / "a", 3, [START] + VALUES[:3])
    scripted, calls = val_scripted([START] + VALUES[:1]), []

    def interrupting(model, batch):  # SIGTERM in the first micro-batch of epoch 2
        if model.training:
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return scripted(model, batch)

    with pytest.raises(TrainingInterrupted):
        train(make_model(dropout=0.3), interrupting, ImageSet(8), ImageSet(2),
              config(epochs=2, plateau_patience=1, keep_best=True),
              checkpoint_dir=tmp_path / "b", verbose=False)
    assert read_training_state(tmp_path / "b").step == 1  # mid-epoch 2
    # the interrupted run's epoch 1 saw VALUES[0]; the resumed one validates epochs 2 and 3
    extended, result = extendable(tmp_path / "b", 3, VALUES[1:3], resume=True)
    assert_bitwise_equal(weights(extended), weights(longer))
    assert strip_times(result.history)[1:] == strip_times(full.history)[1:]
    assert result.changes == [{"epoch": 1, "field": "epochs", "old": 2, "new": 3}]


def test_cosine_schedule_is_replanned_on_extension(tmp_path):
    """A cosine decay depends on the planned length: the extended run continues from the
    2-epoch run's end with the rate re-planned over 4 epochs, which is not what a 4-epoch run
    did (documented: only a schedule that does not depend on the total, the plateau, gives a
    longer run's weights)."""
    _, full = extendable(tmp_path / "a", 4, [START] + VALUES, schedule="cosine")
    _, short = extendable(tmp_path / "b", 2, [START] + VALUES[:2], schedule="cosine")
    _, result = extendable(tmp_path / "b", 4, VALUES[2:], resume=True, schedule="cosine")
    # the rate of 0-based epoch e of an n-epoch plan is cosine_lr(..., e, n)
    rates = [h["learning_rate"] for h in result.history]
    assert rates[:2] == [h["learning_rate"] for h in short.history]
    assert rates[:2] == pytest.approx([cosine_lr(1e-2, 1e-4, e, 2) for e in (0, 1)])
    assert rates[2:] == pytest.approx([cosine_lr(1e-2, 1e-4, e, 4) for e in (2, 3)])
    full_rates = [h["learning_rate"] for h in full.history]
    assert full_rates == pytest.approx([cosine_lr(1e-2, 1e-4, e, 4) for e in range(4)])
    assert full_rates[1] > rates[1]  # the 2-epoch plan decayed faster


def flat_loss(model, batch):
    """A training loss that never improves (early stopping watches it)."""
    loss, metrics = mse_loss(model, batch)
    return loss * 0.0 + 1.0, metrics


def test_extending_after_early_stopping_goes_on(tmp_path):
    def run(epochs, resume=False):
        return train(make_model(), flat_loss, ImageSet(8), None,
                     config(epochs=epochs, early_stopping_patience=2),
                     checkpoint_dir=tmp_path, resume=resume, verbose=False)

    first = run(5)
    assert first.stop_reason == "early_stopping" and len(first.history) == 3
    again = run(5, resume=True)  # the same plan: nothing more to do
    assert again.stop_reason == "early_stopping" and len(again.history) == 3
    extended = run(7, resume=True)  # a new plan: early stopping starts counting again
    assert extended.stop_reason == "early_stopping" and len(extended.history) == 5
    assert extended.changes == [{"epoch": 3, "field": "epochs", "old": 5, "new": 7}]


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        one_epoch(tmp_path, None, resume=True)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_removed_at_start(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    stale = tmp_path / f".{CHECKPOINT_NAME}.abc123{TEMP_SUFFIX}"
    stale.write_bytes(b"half a checkpoint")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep me")
    one_epoch(tmp_path, None)
    assert not stale.exists() and unrelated.exists()


# --- stop signals in-process ------------------------------------------------------------------


def signalling_loss(signals: dict[int, list[int]]):
    """mse_loss that sends itself ``signals[k]`` during the k-th training call."""
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        if model.training:
            calls += 1
            for signum in signals.get(calls, []):
                os.kill(os.getpid(), signum)
        return mse_loss(model, batch)

    return loss_fn


def test_sigterm_in_the_last_step_of_an_epoch_resumes_exactly(tmp_path):
    reference = make_model(dropout=0.3)
    expected = train(reference, mse_loss, ImageSet(8), ImageSet(4), config(epochs=3),
                     verbose=False)
    before = signal.getsignal(signal.SIGTERM)
    model = make_model(dropout=0.3)
    with pytest.raises(TrainingInterrupted, match="epoch 2, step 2"):
        train(model, signalling_loss({4: [signal.SIGTERM]}), ImageSet(8), ImageSet(4),
              config(epochs=3), checkpoint_dir=tmp_path, verbose=False)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers are restored
    loop = read_training_state(tmp_path)
    assert (loop.epoch, loop.step, len(loop.history)) == (1, 2, 1)
    resumed = make_model(dropout=0.3)
    result = train(resumed, mse_loss, ImageSet(8), ImageSet(4), config(epochs=3),
                   checkpoint_dir=tmp_path, resume=True, verbose=False)
    assert_bitwise_equal(weights(resumed), weights(reference))
    assert strip_times(result.history) == strip_times(expected.history)


def test_stop_without_checkpoint_dir_says_so():
    with pytest.raises(TrainingInterrupted, match="no checkpoint directory was given"):
        train(make_model(), signalling_loss({1: [signal.SIGTERM]}), ImageSet(8), None,
              config(), verbose=False)


def test_second_sigint_interrupts_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(), signalling_loss({2: [signal.SIGINT, signal.SIGINT]}),
              ImageSet(16), None, config(), checkpoint_dir=tmp_path, verbose=False)
    assert signal.getsignal(signal.SIGINT) is before
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # no save on the hard stop


@pytest.mark.parametrize("change", [{"batch_size": 3}, {"grad_accumulation": 2},
                                    {"learning_rate": 2e-2}, {"keep_best": True}])
def test_resume_with_another_training_setting_is_refused_naming_it(tmp_path, change):
    for epoch_boundary in (True, False):
        directory = tmp_path / str(epoch_boundary)
        if epoch_boundary:
            one_epoch(directory, None)
        else:
            with pytest.raises(TrainingInterrupted):
                train(make_model(), signalling_loss({2: [signal.SIGTERM]}), ImageSet(16), None,
                      config(batch_size=2), checkpoint_dir=directory, verbose=False)
        before = (directory / CHECKPOINT_NAME).read_bytes()
        (name, value), = change.items()
        base = config(batch_size=4 if epoch_boundary else 2)
        with pytest.raises(ConfigError, match=rf"training\.{name} was .* and is now {value!r}"):
            train(make_model(), mse_loss, ImageSet(16), None,
                  config(**{"batch_size": base.batch_size, "epochs": 3, **change}),
                  checkpoint_dir=directory, resume=True, verbose=False)
        assert (directory / CHECKPOINT_NAME).read_bytes() == before


def test_early_stopping_watches_only_the_plateau_schedule(tmp_path):
    """A cosine decay is a plan and runs to its end; the plateau schedule stops early."""
    def run(schedule, where):
        return train(make_model(), flat_loss, ImageSet(8), None,
                     config(epochs=5, early_stopping_patience=2, schedule=schedule),
                     checkpoint_dir=tmp_path / where, verbose=False)

    plateau = run("plateau", "plateau")
    assert plateau.stop_reason == "early_stopping" and len(plateau.history) == 3
    cosine = run("cosine", "cosine")
    assert cosine.stop_reason == "epochs" and len(cosine.history) == 5
