"""Shared helpers of the benchmark scripts: machine facts, timing, peak memory, JSON records.

Timing: warm-up runs first, then ``repeats`` timed runs; the median is reported. On CUDA the
device is synchronised around each run and CUDA events time it. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` (reset per case); on CPU the process's peak resident set
(VmHWM), reset per case through ``/proc/self/clear_refs`` where Linux allows it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn: Callable[[], object], device: torch.device, repeats: int = 5,
            warmup: int = 2) -> dict:
    """Median, min and all wall times (seconds) of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000)
        else:
            tick = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tick)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory (CUDA) or peak resident set of this process (CPU) since the reset."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Recorder:
    """Appends one JSON record per case to ``results/<name>.jsonl`` (or ``path``) and prints
    a short line per case."""

    def __init__(self, name: str, device: torch.device, path: str | None = None) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.path = Path(path) if path else RESULTS / f"{name}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bench = name
        self.machine = machine(device)
        self.stamp = time.strftime("%Y-%m-%dT%H:%M:%S")

    def record(self, case: str, config: dict, figures: dict) -> dict:
        entry = {"benchmark": self.bench, "case": case, "time": self.stamp,
                 "machine": self.machine, "config": config, "figures": figures}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        shown = ", ".join(f"{k}={_short(v)}" for k, v in figures.items()
                          if not isinstance(v, list))
        print(f"{case}: {shown}", flush=True)
        return entry


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def device_from(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def parse_dataclass_settings(cls: type, items: list[str]) -> dict:
    """``FIELD=VALUE`` overrides of a dataclass's fields, converted to each field's default's
    type (bool, int, float, or left a string; ``none`` gives None, and a field whose default
    is None takes a number)."""
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in names:
            raise SystemExit(f"--set {item}: {cls.__name__} has no field {key!r}")
        default = getattr(defaults, key)
        if value.lower() == "none":
            out[key] = None
        elif isinstance(default, bool):
            out[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            out[key] = int(value)
        elif isinstance(default, float) or default is None:
            number = float(value)
            out[key] = int(number) if default is None and number.is_integer() else number
        else:
            out[key] = value
    return out
