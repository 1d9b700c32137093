"""Opening scan files safely: plain or bz2-compressed ``.npz``, never unpickled.

Shared by every reader: :func:`open_npz` / :func:`load_npz` (bz2 detected by its magic
bytes, decompressed to an anonymous temporary file), :func:`read_npy_header`,
:func:`load_array` (``allow_pickle=False``; pickled object
arrays and corrupt members become :class:`~pinn.errors.DataError`), :func:`missing_key`
(suggests the right key name), and :func:`check_options` for the readers' convention options.
"""

from __future__ import annotations

import bz2
import contextlib
import difflib
import math
import os
import shutil
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pinn.errors import ConfigError, DataError

# What zipfile, zlib, bz2 and numpy raise for a damaged file: besides the obvious ones,
# NotImplementedError (an unknown compression method, zip version or flag), RuntimeError
# (zipfile's "encrypted, password required"), and SyntaxError, tokenize.TokenError or
# RecursionError from numpy parsing a damaged .npy header (a Python literal).
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
               NotImplementedError, RuntimeError, SyntaxError, tokenize.TokenError,
               RecursionError)

_OPTIONS = {
    "values": ("auto", "amplitude", "counts"),
    "zero_frequency": ("center", "corner"),
    "positions": ("center", "corner"),
    "layout": ("auto", "MNN", "NNM"),
}


def check_options(**options: object) -> None:
    """Raise ConfigError unless each reader option (values, zero_frequency, positions,
    layout) is one of its allowed values."""
    for name, value in options.items():
        allowed = _OPTIONS[name]
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not an option; choose one of "
                              + ", ".join(repr(a) for a in allowed))


@contextlib.contextmanager
def open_npz(path: str | os.PathLike) -> Iterator[np.lib.npyio.NpzFile]:
    """Open an ``.npz`` (or bz2-compressed ``.npz.bz2``) with ``allow_pickle=False``.

    A bz2 file (recognised by its magic bytes ``BZh``) is decompressed into an anonymous
    temporary file, deleted when the block exits.

    Raises:
        DataError: no such file, not a (bz2-compressed) zip archive, truncated or corrupt, or a
            single ``.npy`` array.
    """
    with contextlib.ExitStack() as stack:
        archive, _ = load_npz(path, stack)
        with archive:
            yield archive


def load_npz(path: str | os.PathLike,
             stack: contextlib.ExitStack) -> tuple[np.lib.npyio.NpzFile, BinaryIO]:
    """What :func:`open_npz` does, for a reader that keeps the file open: returns the
    archive and the seekable binary file it reads (the file itself, or the decompressed
    temporary of a bz2 file), both closed by ``stack``.

    Raises:
        DataError: as :func:`open_npz`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        source: BinaryIO = stack.enter_context(open(path, "rb"))  # noqa: SIM115
        if source.read(3) == b"BZh":
            source.seek(0)
            plain = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
            with bz2.open(source) as stream:
                shutil.copyfileobj(stream, plain, length=1 << 20)
            plain.flush()
            source = plain
        source.seek(0)
        head = source.read(_SNIFF_BYTES)
        if not head.startswith(_NPZ_MAGIC):
            raise DataError(_not_npz(path, head, source))
        source.seek(0)
        archive = np.load(source, allow_pickle=False)
    except READ_ERRORS as exc:
        raise DataError(f"{path} is not a readable .npz archive (truncated, corrupt, or "
                        f"another format): {_oneline(exc).rstrip('.')}. Re-create it with "
                        "numpy.savez or pinn.data.write_npz") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single .npy array, not an .npz archive of named "
                        "arrays; save the scan with numpy.savez(path, diffraction=..., "
                        "xcoords=..., ...)")
    return archive, source


#: What an ``.npz`` (a zip: local file header, or the end record of an empty zip) or a single
#: ``.npy`` array starts with. numpy treats anything else as a pickle, and its message for that
#: suggests ``allow_pickle=``, which pinn must never do for a file it was given.
_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SNIFF_BYTES = 8
#: Other formats a scan is commonly found in, by their leading bytes.
_FORMATS = ((b"\x1f\x8b", "a gzip-compressed file (decompress it with gunzip first)"),
            (b"CDF\x01", "a NetCDF file"), (b"CDF\x02", "a NetCDF file"),
            (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
            (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
            (b"\x28\xb5\x2f\xfd", "a zstandard-compressed file"),
            (b"\xfd7zXZ\x00", "an xz-compressed file"))
_NPZ_FIX = ("save scans with numpy.savez(path, diffraction=..., xcoords=..., ...) or "
            "pinn.data.write_npz")


def _not_npz(path: Path, head: bytes, source: BinaryIO) -> str:
    """Say what a file that is not an ``.npz`` is, and how to get an ``.npz`` from it."""
    if _is_hdf5(source):
        return (f"{path} is an HDF5 file, not an .npz archive; copy its datasets into an .npz "
                "under the data contract's names (diffraction, xcoords, ycoords, probeGuess) "
                "with h5py and numpy.savez: README.md, 'Converting an HDF5 file', has the "
                "few lines")
    if not head:
        return f"{path} is empty, not an .npz archive; {_NPZ_FIX}"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (f"{path} is a Python pickle, not an .npz archive; pinn never unpickles files "
                f"(that can run arbitrary code): {_NPZ_FIX}")
    for magic, kind in _FORMATS:
        if head.startswith(magic):
            return f"{path} is {kind}, not an .npz archive; {_NPZ_FIX}"
    if _looks_like_text(source):
        return (f"{path} is a text file, not an .npz archive (a zip of .npy arrays); "
                f"{_NPZ_FIX}")
    return (f"{path} is not an .npz archive (a zip of .npy arrays; it starts with {head!r}); "
            f"{_NPZ_FIX}")


def _is_hdf5(source: BinaryIO) -> bool:
    """HDF5's signature sits at byte 0, 512, 1024, 2048, ... (a user block may precede it)."""
    offset = 0
    while True:
        source.seek(offset)
        signature = source.read(len(_HDF5_MAGIC))
        if signature == _HDF5_MAGIC:
            return True
        if len(signature) < len(_HDF5_MAGIC) or offset >= 1 << 20:
            return False
        offset = 512 if offset == 0 else 2 * offset


def _looks_like_text(source: BinaryIO) -> bool:
    source.seek(0)
    sample = source.read(4096)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut at the sample's end
            return False
    return b"\x00" not in sample


def read_npy_header(archive: np.lib.npyio.NpzFile,
                    member: str) -> tuple[zipfile.ZipInfo, tuple[int, ...], bool, np.dtype, int]:
    """The ``.npy`` header of ``member`` (e.g. ``'diffraction.npy'``) without reading its
    data: ``(zip info, shape, fortran_order, dtype, header bytes)``. Raises what zipfile and
    numpy raise for a damaged member (see ``READ_ERRORS``)."""
    info = archive.zip.getinfo(member)
    with archive.zip.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy format version {version} is not supported")
        return info, shape, fortran, dtype, handle.tell()


def load_array(archive: np.lib.npyio.NpzFile, path: Path, key: str) -> np.ndarray:
    """``archive[key]``, never unpickled.

    The member's ``.npy`` header is read first: an array claiming more bytes than its member
    holds is refused before any memory is allocated for it.

    Raises:
        DataError: the key holds a pickled object array, its member is truncated/corrupt, or
            the array does not fit in memory.
    """
    try:
        _check_claimed_size(archive, path, key)
        return archive[key]
    except MemoryError:
        raise DataError(f"{path.name}: '{key}' does not fit in memory; use a machine with more "
                        "memory or split the scan") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path.name}: '{key}' is a pickled object array; pinn refuses to unpickle "
                "files (it can run arbitrary code). Re-save it as a numeric array, e.g. "
                f"numpy.asarray({key}, dtype=numpy.complex64), or remove the key") from exc
        raise _corrupt(path, key, exc) from exc
    except READ_ERRORS as exc:
        raise _corrupt(path, key, exc) from exc


def _check_claimed_size(archive: np.lib.npyio.NpzFile, path: Path, key: str) -> None:
    """Refuse an ``.npy`` member whose header claims more data than the member holds."""
    name = f"{key}.npy"
    if name not in archive.zip.namelist():
        return  # a member without .npy header: numpy returns its bytes
    info, shape, _, dtype, header_bytes = read_npy_header(archive, name)
    if dtype.hasobject:
        return  # refused as a pickled array by numpy itself
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > info.file_size - header_bytes:
        raise ValueError(f"the header claims {claimed} bytes of data (shape {shape}, "
                         f"{dtype}) but the member holds {info.file_size - header_bytes}")


def _oneline(exc: BaseException) -> str:
    """An embedded error's text on one line."""
    return " ".join(str(exc).split())


def _corrupt(path: Path, key: str, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read '{key}' (the file is truncated or corrupt: "
                     f"{_oneline(exc)}); "
                     "re-create the file")


def missing_key(path: Path, keys: list[str], wanted: str, also: str = "") -> DataError:
    """The error for a missing ``wanted`` key, suggesting a close match among ``keys``."""
    lower = {k.lower(): k for k in keys}
    guess = lower.get(wanted.lower()) or next(iter(difflib.get_close_matches(
        wanted, keys, n=1, cutoff=0.6)), None)
    hint = f" Did you mean '{guess}'? Rename it to '{wanted}'." if guess else ""
    alternatives = f" {also}" if also else ""
    return DataError(f"{path.name} has no '{wanted}' array{alternatives} (keys found: "
                     f"{sorted(keys)}).{hint}")
