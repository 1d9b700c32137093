"""Helpers that damage files the way disks, transfers and other tools do (shared by the
validation and fuzz tests)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def patch_zip_headers(path: Path, name: str, *, method: int | None = None,
                      flags: int | None = None) -> None:
    """Set the compression method or general-purpose flag bits of member ``name`` in both its
    local header and its central directory entry (e.g. ``method=99``: unknown compression;
    ``flags=0x1``: encrypted; ``flags=0x20``: patched data)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, flag_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30),
                                                   (b"PK\x01\x02", 8, 10, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at:start + name_at + len(encoded)] == encoded:
                if flags is not None:
                    data[start + flag_at:start + flag_at + 2] = flags.to_bytes(2, "little")
                if method is not None:
                    data[start + method_at:start + method_at + 2] = method.to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


class _Filling:
    """A binary file whose disk fills up: writes fail with ENOSPC once ``budget`` bytes (shared
    by every file opened while the disk is 'full') have been written."""

    def __init__(self, handle, budget: list[int]) -> None:
        self._handle, self._budget = handle, budget

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self._budget[0]:
            self._handle.write(data[:self._budget[0]])
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self._budget[0] -= len(data)
        return self._handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)


def fill_disk_after(monkeypatch, n_bytes: int) -> None:
    """Make binary files opened with ``os.fdopen`` (as :mod:`pinn.atomic` does) fail with
    ENOSPC after ``n_bytes`` bytes in total."""
    budget = [n_bytes]
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        return _Filling(handle, budget) if "b" in mode and "w" in mode else handle

    monkeypatch.setattr(os, "fdopen", fdopen)
