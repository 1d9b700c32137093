"""Helpers that damage files the way disks, transfers and other tools do (shared by the
validation and fuzz tests)."""

from __future__ import annotations

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
