"""Mixed precision: which autocast dtype a run uses, and whether the CPU runs bf16 natively.

bf16 autocast on a CPU without bf16 instructions (AVX512_BF16 or AMX on x86) emulates every
bf16 operation and was measured about 10x slower than float32 (25-31 s per epoch against
2-3 s on an AVX2 EPYC). Such a run falls back to float32 and says so, unless forced.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch

from pinn.errors import ConfigError

_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags as Linux lists them (None where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def cpu_bf16_native(capability: str | None = None, flags: set[str] | None = None,
                    machine: str | None = None) -> bool | None:
    """True when bf16 runs natively on this x86 CPU, False when it is emulated, None when it
    cannot be told (another architecture, or no flags to read).

    It is emulated when PyTorch's kernels are capped below AVX-512
    (``torch.backends.cpu.get_cpu_capability()``, which ``ATEN_CPU_CAPABILITY`` lowers) or
    oneDNN is capped below it (``ONEDNN_MAX_CPU_ISA``), or the CPU lacks AVX512_BF16 and AMX.
    The arguments replace what is read from the running machine (for tests).
    """
    machine = (machine or platform.machine()).lower()
    if machine not in _X86:
        return None
    capability = capability or torch.backends.cpu.get_cpu_capability()
    if not capability.upper().startswith("AVX512"):
        return False
    onednn_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if onednn_cap not in ("ALL", "DEFAULT") and not onednn_cap.startswith(("AVX512", "AVX10")):
        return False
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    return any(flag in flags for flag in _NATIVE_BF16_FLAGS)


def autocast_dtype(precision: str, device: torch.device, *, force: bool = False,
                   say: Callable[[str], None] = print) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: float32 throughout).

    bf16 on a CPU that emulates it becomes float32 with a one-line ``say``, unless ``force``.

    Raises:
        ConfigError: fp16 on a device that is not CUDA.
    """
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
        return torch.float16
    if precision != "bf16":
        return None
    if device.type == "cpu" and not force and cpu_bf16_native() is False:
        say("warning: this CPU has no native bf16 (AVX512_BF16 or AMX), where bf16 autocast "
            "runs about 10x slower than float32; training in float32 instead (force bf16 with "
            "--amp-force)")
        return None
    return torch.bfloat16
