"""Stop requests: under torchrun, a worker whose launcher is gone asks to stop (the loop then
writes its checkpoint and ends, as on SIGTERM); outside torchrun nothing is watched."""

from __future__ import annotations

import os
import threading
import time

from pinn.engine import signals


def test_a_worker_whose_launcher_died_requests_a_stop(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setattr(signals, "LAUNCHER_POLL_S", 0.05)
    parent = os.getppid()
    monkeypatch.setattr(signals.os, "getppid", lambda: parent)
    stop = threading.Event()
    end = signals.watch_launcher(stop)
    try:
        time.sleep(0.3)
        assert not stop.is_set()  # the launcher is alive
        monkeypatch.setattr(signals.os, "getppid", lambda: 1)  # re-parented: launcher gone
        assert stop.wait(5)
    finally:
        end()


def test_outside_torchrun_the_parent_is_not_watched(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr(signals, "LAUNCHER_POLL_S", 0.05)
    monkeypatch.setattr(signals.os, "getppid", lambda: 1)
    stop = threading.Event()
    signals.watch_launcher(stop)()
    time.sleep(0.3)
    assert not stop.is_set()
    assert not [t for t in threading.enumerate() if t.name == "pinn-launcher-watch"]
