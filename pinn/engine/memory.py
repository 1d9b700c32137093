"""Keep freed memory in the process while a loop allocates the same buffers every step.

glibc's malloc serves a block above its mmap threshold (adjusted as the program runs, at most
32 MiB) with a fresh mapping that it unmaps on free, and returns the top of its heap to the
system once more than twice that threshold is free there. A training step that allocates and
frees tens of MB of temporaries then gets fresh pages, and page faults on every one, at every
step: on the 2-core VM of benchmarks/README.md that was a quarter of a refinement step
(docs/DESIGN.md, "Refinement").
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's own ceiling of its adjusted mmap threshold (64-bit), and the trim threshold it then
#: uses: what a long-running process settles to, and what is set back on leaving
_SETTLED_MMAP = 32 << 20
_SETTLED_TRIM = 64 << 20


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc
    except (OSError, AttributeError, TypeError):
        return None


@contextlib.contextmanager
def reuse_freed_memory(limit_bytes: int = 1 << 30) -> Iterator[bool]:
    """Inside, blocks of up to ``limit_bytes`` come from malloc's heap and freed memory stays
    there for the next step (up to ``2 * limit_bytes`` free at the heap's top); on leaving,
    glibc's settled thresholds (32 MiB / 64 MiB) are set and the free memory goes back to the
    system (``malloc_trim``). Yields whether it applies: only with glibc (elsewhere nothing
    changes). The peak memory is the same; what changes is that it is not returned between
    steps."""
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(min(limit_bytes, 2**31 - 1)))
    libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(2 * limit_bytes, 2**31 - 1)))
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_SETTLED_MMAP))
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_SETTLED_TRIM))
        libc.malloc_trim(ctypes.c_size_t(0))
