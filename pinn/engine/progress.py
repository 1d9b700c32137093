"""What training reports: a console progress line and TensorBoard scalars and images."""

from __future__ import annotations

import math
import sys
import time
import types
from pathlib import Path
from typing import TextIO

import torch


def plural(count: int, noun: str) -> str:
    """``"1 epoch"``, ``"2 epochs"``."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ConsoleProgress:
    """One line per update: epoch, step, loss, patterns/s and ETA.

    On a terminal the line is rewritten in place at most every ``interval`` seconds; otherwise
    (logs, CI) a line is printed at that interval and at the end of each epoch.
    """

    def __init__(self, total_epochs: int | None, stream: TextIO | None = None,
                 interval: float = 1.0, enabled: bool = True) -> None:
        self.total_epochs = total_epochs
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -math.inf  # the first step is always shown

    def step(self, epoch: int, step: int, steps: int, loss: float, rate: float,
             eta_s: float) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        line = (f"{self._epoch(epoch)}  step {step}/{steps}  loss {loss:.6g}  "
                f"{rate:.0f} patterns/s  ETA {format_duration(eta_s)}")
        self._write(line, final=False)

    def epoch(self, epoch: int, summary: dict[str, float], seconds: float) -> None:
        if not self.enabled:
            return
        parts = [self._epoch(epoch)]
        parts += [f"{k} {v:.6g}" for k, v in summary.items()]
        parts.append(f"{seconds:.1f}s")
        self._write("  ".join(parts), final=True)

    def _epoch(self, epoch: int) -> str:
        total = "" if self.total_epochs is None else f"/{self.total_epochs}"
        return f"epoch {epoch + 1}{total}"

    def message(self, text: str) -> None:
        if self.enabled:
            self._write(text, final=True)

    def _write(self, line: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class TensorBoard:
    """A thin SummaryWriter wrapper that does nothing when no directory is given."""

    def __init__(self, directory: Path | None) -> None:
        self.writer = None
        if directory is not None:
            # TensorBoard's file I/O imports TensorFlow whenever it is installed (seconds of
            # start-up and a large memory footprint for nothing); its documented switch to the
            # built-in stub is the presence of the module `tensorboard.compat.notf`.
            sys.modules.setdefault("tensorboard.compat.notf",
                                   types.ModuleType("tensorboard.compat.notf"))
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(directory))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def images(self, images: dict[str, torch.Tensor], step: int) -> None:
        """Log ``(H, W)`` float images, each rescaled to [0, 1]."""
        if self.writer is None:
            return
        for name, image in images.items():
            image = image.detach().float().cpu()
            low, high = image.min(), image.max()
            scaled = (image - low) / (high - low) if high > low else torch.zeros_like(image)
            self.writer.add_image(name, scaled[None], step, dataformats="CHW")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
