"""DDP on CPU (gloo): two processes with batch b follow the loss curve of one process with
batch 2b, stay in sync, and only rank 0 writes checkpoints and logs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from _ddp_worker import PER_RANK_BATCH, SCENARIOS
from _engine_helpers import (HERE, PYTHON, REPO, ImageSet, assert_bitwise_equal, child_env,
                             config, free_port, load_result, make_model, mse_loss, strip_times)
from pinn.engine.resume import CHECKPOINT_NAME
from pinn.engine.train import train

TIMEOUT_S = 150


def launch(out: Path) -> tuple[list[int], list[str]]:
    """Two worker processes with the environment ``torchrun`` gives them (started directly,
    so that a hung run can be stopped: torchrun puts its workers in their own sessions).
    Returns their exit codes (negative: hung and killed) and outputs."""
    port = str(free_port())
    procs, logs = [], []
    for rank in range(2):
        log = open(out / f"rank{rank}.log", "w+")
        env = child_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                        LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([PYTHON, str(HERE / "_ddp_worker.py"), str(out)],
                                      env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        logs.append(log)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = []
    for log in logs:
        log.seek(0)
        output.append(log.read())
        log.close()
    return [proc.returncode for proc in procs], output


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    for _ in range(3):  # the free port may be taken by someone else before rank 0 binds it
        out = tmp_path_factory.mktemp("ddp")
        codes, output = launch(out)
        if codes == [0, 0] or "address already in use" not in "".join(output).lower():
            break
    assert codes == [0, 0], f"DDP workers ended with {codes} (negative: hung and killed):\n" + (
        "\n".join(text[-3000:] for text in output))
    return out, output


def single_process(n_train: int, n_val: int):
    model = make_model(seed=3)
    result = train(model, mse_loss, ImageSet(n_train), ImageSet(n_val, seed=2),
                   config(epochs=3, batch_size=2 * PER_RANK_BATCH, seed=3), verbose=False)
    return model, result.history


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_two_ranks_match_one_process_with_twice_the_batch(ddp_run, scenario):
    out, _ = ddp_run
    weights0, history0 = load_result(out / scenario / "rank0.safetensors")
    weights1, history1 = load_result(out / scenario / "rank1.safetensors")
    assert_bitwise_equal(weights0, weights1)  # the replicas never drift apart
    # every rank reports the global (all-reduced) numbers
    assert strip_times(history0) == strip_times(history1)

    model, history = single_process(*SCENARIOS[scenario])
    assert len(history0) == len(history) == 3
    for ddp_entry, entry in zip(history0, history):
        for key in ("train_loss", "train_mae", "val_loss", "val_mae", "learning_rate"):
            assert ddp_entry[key] == pytest.approx(entry[key], rel=1e-5), (key, ddp_entry)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(weights0[key], value, rtol=1e-4, atol=1e-6)
    assert not torch.equal(weights0["conv1.weight"], make_model(seed=3).conv1.weight)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_only_rank_zero_writes(ddp_run, scenario):
    out, (output0, output1) = ddp_run
    directory = out / scenario
    assert json.loads((directory / "rank0.writes").read_text()) == 3  # one per epoch
    assert json.loads((directory / "rank1.writes").read_text()) == 0
    assert sorted(p.name for p in (directory / "ckpt").iterdir()) == [CHECKPOINT_NAME]
    events = list((directory / "tb").glob("*/events.out.tfevents.*"))
    assert len(events) == 1, events
    # Only rank 0 prints progress.
    assert output0.count("epoch 3/3  train_loss") == len(SCENARIOS)
    assert "epoch" not in output1


def test_no_spurious_non_finite_steps(ddp_run):
    """An empty share of a short last batch is not a non-finite loss."""
    _, outputs = ddp_run
    assert all("non-finite" not in output for output in outputs)


def test_sigterm_to_one_rank_stops_all_and_resume_is_bitwise_exact(ddp_run):
    out, _ = ddp_run
    directory = out / "interrupted"
    assert all((directory / f"rank{rank}.interrupted").exists() for rank in range(2))
    reference, reference_history = load_result(out / "even" / "rank0.safetensors")
    for rank in range(2):
        weights, history = load_result(directory / f"rank{rank}.safetensors")
        assert_bitwise_equal(weights, reference)
        assert strip_times(history) == strip_times(reference_history)
