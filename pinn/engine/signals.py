"""Stop requests the training loop polls after each step: SIGINT/SIGTERM, and, under
``torchrun``, the death of the launcher.

``torchrun`` starts its workers in their own sessions, so when the launcher itself is killed
(SIGKILL, or an out-of-memory kill) nothing stops them: they would train on as orphans,
competing for the machine and writing into the run directory that a resumed or new run then
uses. A worker that finds its launcher gone (its parent process changed) requests a stop, as a
SIGTERM would: the ranks agree, the checkpoint is written and the run ends, resumable.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

#: Seconds between two checks that the ``torchrun`` launcher is still there.
LAUNCHER_POLL_S = 1.0


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM request a clean stop (checkpoint, then TrainingInterrupted); a second
    SIGINT interrupts at once. Under ``torchrun`` the launcher's death requests it too. Only
    possible from the main thread; elsewhere a no-op. Returns the function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    stop_watching = watch_launcher(stop)

    def restore() -> None:
        stop_watching()
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def watch_launcher(stop: threading.Event) -> Callable[[], None]:
    """Under ``torchrun`` (``TORCHELASTIC_RUN_ID`` set), set ``stop`` once this process's
    parent, the launcher, is gone; a no-op otherwise. Returns the function that ends the
    watch."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return lambda: None
    launcher = os.getppid()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(LAUNCHER_POLL_S):
            if os.getppid() != launcher:
                stop.set()
                return

    threading.Thread(target=watch, name="pinn-launcher-watch", daemon=True).start()
    return done.set
