"""Atomic file writes: a crash, a kill or a full disk leaves either the old file or the new one.

The data goes to a temporary file in the destination's directory, is flushed and fsynced, and
only then renamed over the destination (``os.replace`` is atomic on POSIX and Windows). On any
error the temporary file is removed, directories the write created are removed again, and the
destination is untouched. :func:`atomic_write_files` does the same for a set of files (a
reconstruction and its figures): all are staged before any is renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block exits cleanly.

    An ``OSError`` about the write (no space left, no permission) names ``path``.
    """
    path = Path(path)
    with _cleanup_on_error(path) as stage:
        fd, temp = stage(path)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_files(files: dict[str | os.PathLike, bytes]) -> None:
    """Write several files, each atomically, and none unless all could be written.

    Every file is first written to its temporary and fsynced; only then are they renamed into
    place, so a failure while writing (a full disk) leaves every destination as it was. (A
    failing rename after the first, which needs no space, could still leave a mix.)
    """
    paths = [Path(p) for p in files]
    if not paths:
        return
    with _cleanup_on_error(*paths) as stage:
        staged = []
        for path, data in zip(paths, files.values()):
            fd, temp = stage(path)
            staged.append(temp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for temp, path in zip(staged, paths):
            os.replace(temp, path)
    for directory in dict.fromkeys(p.parent for p in paths):
        _fsync_directory(directory)


def remove_stale_temporaries(directory: str | os.PathLike) -> None:
    """Delete temporary files left in ``directory`` by writes that were killed mid-way."""
    directory = Path(directory)
    if directory.is_dir():
        for leftover in directory.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()


@contextlib.contextmanager
def _cleanup_on_error(*paths: Path):
    """Yield ``stage(path) -> (fd, temp)``, which creates ``path``'s missing directories and a
    temporary beside it. On an error, remove the temporaries and the directories created, and
    re-raise; an OSError about no file or about a temporary then names the destination.
    """
    temps: dict[str, Path] = {}
    created: list[Path] = []
    current = [paths[0]]

    def stage(path: Path) -> tuple[int, str]:
        current[0] = path
        for directory in reversed([path.parent, *path.parent.parents]):
            if not directory.exists():
                with contextlib.suppress(FileExistsError):
                    directory.mkdir()
                    created.append(directory)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                        dir=path.parent)
        except OSError as exc:  # named after its random temporary; name the destination
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        temps[temp] = path
        _set_mode(fd, path)
        return fd, temp

    try:
        yield stage
    except BaseException as exc:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if (isinstance(exc, OSError) and exc.errno is not None
                and (exc.filename is None or exc.filename in temps)):
            target = temps.get(exc.filename, current[0])
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise


def _set_mode(fd: int, path: Path) -> None:
    """Give the temporary the mode the file would have had if opened normally: an existing
    destination's mode, else 0o666 less the umask (``mkstemp`` creates 0o600, which would
    hide results from the group that shares a beamline account)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError, NotImplementedError, AttributeError):
        os.fchmod(fd, mode)


def directory_mode(path: str | os.PathLike) -> int:
    """The mode a directory made to replace ``path`` should get: that of the existing
    directory, else 0o777 less the umask (what ``mkdir`` gives; ``tempfile.mkdtemp`` creates
    0o700, which would hide a run's model from everyone else)."""
    try:
        return Path(path).stat().st_mode & 0o7777
    except OSError:
        return 0o777 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (setting it to read
    it back is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
