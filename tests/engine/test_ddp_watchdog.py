"""The DDP watchdog: when one process stops answering (alive but stuck, or having skipped a
collective), every process of a ``pinn train`` run ends within about PINN_DDP_TIMEOUT_S with
one error line, instead of waiting for ever (issue 15 finding 10)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from _engine_helpers import HERE, PYTHON, REPO, child_env, free_port
from pinn.engine import distributed
from pinn.errors import ConfigError

TIMEOUT_S = 3  # the watchdog's bound in these runs
GIVE_UP_S = 120  # the test's own bound: a process still running then has hung


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "scan.npz"
    subprocess.run([PYTHON, "-m", "pinn", "simulate", str(path), "--n-scans", "40",
                    "--size", "64", "--object", "grf"], env=child_env(), cwd=REPO,
                   check=True, capture_output=True, timeout=120)
    return path


def launch(mode: str, stall_rank: int, scan: Path, out: Path) -> list[tuple[int, str, float]]:
    """Two ranks of ``pinn train`` with one disturbed; ``(exit code, stderr, seconds)`` each
    (exit code None: still running after GIVE_UP_S, then killed)."""
    port = str(free_port())
    argv = ["train", str(scan), "--out", str(out), "--epochs", "2", "--batch-size", "4",
            "--n-filters-scale", "1", "--quiet"]
    procs = []
    start = time.monotonic()
    for rank in range(2):
        env = child_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                        LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                        PINN_DDP_TIMEOUT_S=str(TIMEOUT_S), TORCH_CPP_LOG_LEVEL="FATAL")
        procs.append(subprocess.Popen(
            [PYTHON, str(HERE / "_stall_worker.py"), mode, str(stall_rank), *argv], env=env,
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(start + GIVE_UP_S - time.monotonic(), 1))
            results.append((proc.returncode, err, time.monotonic() - start))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            results.append((None, err, GIVE_UP_S))
    return results


@pytest.mark.parametrize("mode", ["stall", pytest.param("stall-forward", marks=pytest.mark.slow)])
def test_a_stalled_process_ends_the_run_with_one_line(scan, tmp_path, mode):
    """Rank 1 stops answering for 3 T (before one of pinn's sums, or before a DDP forward):
    rank 0 gives up after T with one line; rank 1 then finds rank 0 gone and ends with one
    line too. Nobody hangs."""
    (code0, err0, seconds0), (code1, err1, _) = launch(mode, 1, scan, tmp_path / "run")
    assert code0 == 2, err0[-3000:]
    assert code1 == 2, err1[-3000:]
    (line0,) = err0.strip().splitlines()
    assert re.fullmatch(r"pinn: error: process 0 of 2 waited 3 s in a collective operation "
                        r"that another process never joined \(.*\); .*PINN_DDP_TIMEOUT_S",
                        line0), line0
    (line1,) = err1.strip().splitlines()
    assert line1.startswith("pinn: error: process 1 of 2: a collective operation failed"), line1
    assert seconds0 < GIVE_UP_S
    assert not (tmp_path / "run" / "model").exists()


def test_a_skipped_collective_ends_every_process(scan, tmp_path):
    """Rank 1 skips a sum that rank 0 joins, so the ranks' collectives no longer pair up. Gloo
    notices the mismatch and aborts rank 0 naming it (a C++ abort pinn cannot catch), or the
    watchdog's timeout fires; either way every process ends, and rank 1 in one line."""
    (code0, err0, _), (code1, err1, _) = launch("skip", 1, scan, tmp_path / "run")
    assert code0 is not None and code0 != 0, err0[-3000:]
    assert code1 == 2, err1[-3000:]
    if code0 == 2:
        (line0,) = err0.strip().splitlines()
        assert line0.startswith("pinn: error: process 0 of 2"), line0
    else:
        assert "collective mismatch" in err0, err0[-3000:]
    (line1,) = err1.strip().splitlines()
    assert re.fullmatch(r"pinn: error: process 1 of 2: a collective operation failed \("
                        r".*\); another process failed, .*", line1), line1
    assert ".cc:" not in line1 and "typically caused" not in line1  # gloo's gist only
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.slow
def test_under_torchrun_a_process_stuck_for_ever_ends_the_job(scan, tmp_path):
    """The reported case: ``torchrun ... -m pinn train`` never ended. With rank 1 stuck for
    ever outside any collective, rank 0 gives up after T with one line, and torchrun then
    stops rank 1 (SIGTERM, and SIGKILL 30 s later) and ends the job."""
    torchrun = Path(PYTHON).parent / "torchrun"
    env = child_env(PINN_DDP_TIMEOUT_S=str(TIMEOUT_S), TORCH_CPP_LOG_LEVEL="FATAL")
    command = [str(torchrun), "--nproc_per_node", "2", "--master-port", str(free_port()),
               str(HERE / "_stall_worker.py"), "hang", "1", "train", str(scan), "--out",
               str(tmp_path / "run"), "--epochs", "2", "--batch-size", "4",
               "--n-filters-scale", "1", "--quiet"]
    start = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=GIVE_UP_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun passes it on to its workers
        _, err = proc.communicate()
        pytest.fail(f"torchrun was still running after {GIVE_UP_S} s:\n{err[-3000:]}")
    assert proc.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("pinn: ")]
    assert len(ours) == 1 and ours[0].startswith("pinn: error: process 0 of 2 waited 3 s"), err
    assert time.monotonic() - start < GIVE_UP_S


def _processes_using(marker: str) -> list[int]:
    """Pids of the processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_text():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_workers_stop_when_torchrun_is_killed(scan, tmp_path):
    """torchrun puts its workers in their own sessions: when torchrun itself is SIGKILLed they
    trained on as orphans, writing into the run directory. Now they notice, agree to stop,
    write the checkpoint and end (the run can be resumed)."""
    torchrun = Path(PYTHON).parent / "torchrun"
    out = tmp_path / "orphan-run"
    log = tmp_path / "torchrun.log"
    command = [str(torchrun), "--nproc_per_node", "2", "--master-port", str(free_port()),
               "-m", "pinn", "train", str(scan), "--out", str(out), "--epochs", "500",
               "--batch-size", "4", "--n-filters-scale", "1"]
    with log.open("w") as sink:
        launcher = subprocess.Popen(command, env=child_env(), cwd=REPO, stdout=sink,
                                    stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + GIVE_UP_S
        while not (out / "checkpoints" / "last.safetensors").exists():  # epoch 1 is done
            assert time.monotonic() < deadline and launcher.poll() is None, log.read_text()
            time.sleep(0.2)
        workers = [pid for pid in _processes_using(str(out)) if pid != launcher.pid]
        launcher.kill()
        launcher.wait()
        while _processes_using(str(out)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _processes_using(str(out))
    finally:
        for pid in _processes_using(str(out)):
            os.kill(pid, signal.SIGKILL)
    assert len(workers) == 2, workers
    assert not left, f"workers still running after torchrun died:\n{log.read_text()[-3000:]}"
    text = log.read_text()
    assert text.count("pinn: training interrupted at epoch") == 2, text[-3000:]
    assert "epoch 500/500" not in text


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "inf"])
def test_a_bad_timeout_is_refused(monkeypatch, value):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(ConfigError, match="PINN_DDP_TIMEOUT_S is .*positive number of seconds"):
        distributed.timeout_s()


def test_the_timeout_defaults_to_five_minutes(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout_s() == 300.0
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout_s() == 12.5
