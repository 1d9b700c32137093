"""SIGINT/SIGTERM handling: a stop request the training loop polls after each step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def install_stop_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM request a clean stop (checkpoint, then TrainingInterrupted); a second
    SIGINT interrupts at once. Only possible from the main thread; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
