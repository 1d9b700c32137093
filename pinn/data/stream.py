"""Streaming a scan file: the diffraction patterns are read on demand, never all at once.

:class:`NpzScanStream` (open it with :func:`open_scan_stream`) reads an NPZ-contract file
(:mod:`pinn.data.npz`) for scans larger than memory. The small arrays (positions, probe,
object, scan index) are loaded and validated at once, exactly as :func:`pinn.data.read_npz`
does; the diffraction array stays on disk. Its ``.npy`` header is parsed to find where the
patterns start, and :meth:`NpzScanStream.read` reads the requested patterns by offset
(``pread``), applies the reader's conventions (counts -> ``sqrt``, corner zero frequency ->
``fftshift``) and validates the values (finite, non-negative) chunk by chunk. The stream
satisfies :class:`pinn.data.scan.ScanSource`, which is all that
:func:`pinn.reconstruct.reconstruct` needs.

Memory is bounded by the chunk read, not by M: a ``read`` of ``k`` patterns holds about ``k``
patterns (a few copies: stored dtype, float32, checks), and :meth:`pattern_energy` reads the
file in blocks of at most ``chunk_bytes`` of float32 patterns. Reading goes through ``pread``
on an ordinary file descriptor (no ``mmap``), so the pages read stay in the operating system's
file cache and are not counted in the process's resident set.

Storage forms:

- uncompressed (``numpy.savez``, :func:`pinn.data.write_npz` by default): read in place;
- zip-deflated members (``numpy.savez_compressed``): the diffraction member is decompressed
  once, when the stream is opened, into an anonymous temporary file (deleted on close; it
  needs disk space for the whole array), and read from there; its CRC is checked then;
- a bz2-compressed ``.npz.bz2``: likewise decompressed once into an anonymous temporary file;
- the legacy ``(N, N, M)`` layout and Fortran-ordered arrays are refused: a pattern is not
  contiguous there, so it cannot be read in one piece (read such a file in memory, or rewrite
  it once in the canonical layout with ``write_npz(new, read_npz(old))``). ``(M, N, N, 1)``
  is read as ``(M, N, N)``.

The stored bytes of an uncompressed member are not CRC-checked (that would need a pass over
the whole file before the first pattern); damage that leaves the values finite and
non-negative is not detected.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import struct
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from pinn.data import _checks
from pinn.data.npz import apply_conventions, read_auxiliary, read_coordinates
from pinn.data.safe_npz import (READ_ERRORS, _oneline, check_options, load_array,
                                load_npz, read_npy_header)
from pinn.data.scan import ENERGY_CHUNK, ScanData, check_read_indices, pattern_energy
from pinn.errors import DataError

DEFAULT_CHUNK_BYTES = 16 << 20  # float32 bytes per block of pattern_energy's pass
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (skipped), name length, extra length
_NO_POSITIONS = torch.zeros(0, 2, dtype=torch.float64)


def open_scan_stream(path: str | os.PathLike, **options: object) -> NpzScanStream:
    """Open an NPZ-contract scan for streaming: ``NpzScanStream(path, **options)``.

    Options are those of :func:`pinn.data.read_npz` (``values``, ``zero_frequency``,
    ``positions``, ``layout``) and ``chunk_bytes``. Close the stream when done (it is a
    context manager).
    """
    return NpzScanStream(path, **options)  # type: ignore[arg-type]


class NpzScanStream:
    """An NPZ-contract scan whose diffraction patterns are read from the file on demand.

    A :class:`pinn.data.scan.ScanSource`. The result of ``read(torch.arange(M))`` and every
    attribute equal, bit for bit, what :func:`pinn.data.read_npz` returns with the same
    options.

    Attributes:
        path: the file.
        key: the diffraction key read (``'diffraction'`` or the legacy ``'diff3d'``).
        N: pattern side in pixels; n_scans: M, the number of patterns.
        positions: ``(M, 2)`` float64 ``(y, x)`` object pixel of each window's centre pixel.
        positions_start: ``(M, 2)`` float64 nominal positions, or None.
        probe: ``(N, N)`` complex64, or ``(K, N, N)`` modes. object: ``(H, W)`` complex64 or None.
        scan_index: ``(M,)`` int64 (zeros when the file has none).
        counts: True when ``amplitude**2`` are photon counts (as ``ScanData.counts``).
        stored_dtype: the dtype of the stored diffraction array.
        chunk_patterns: patterns per block of :meth:`pattern_energy`'s pass.

    Args:
        path: an ``.npz`` file (or bz2-compressed ``.npz.bz2``) in the NPZ contract.
        values, zero_frequency, positions, layout: as :func:`pinn.data.read_npz`.
        chunk_bytes: bound on the float32 bytes of one block of :meth:`pattern_energy`
            (default 16 MiB; at least two patterns per block).

    Raises:
        ConfigError: an option is not allowed.
        DataError: everything :func:`pinn.data.read_npz` refuses about the file and its small
            arrays and the diffraction array's shape and dtype; additionally a legacy
            ``(N, N, M)`` or Fortran-ordered diffraction array (not streamable), and a
            diffraction member shorter than its header claims. Bad values (NaN, inf,
            negative) are found when the patterns holding them are read.
    """

    def __init__(self, path: str | os.PathLike, *, values: str = "auto",
                 zero_frequency: str = "center", positions: str = "center",
                 layout: str = "auto", chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        check_options(values=values, zero_frequency=zero_frequency, positions=positions,
                      layout=layout)
        self.chunk_bytes = _checks.positive_int("chunk_bytes", chunk_bytes)
        self.path = Path(path)
        self.values, self.zero_frequency = values, zero_frequency
        self._lock = threading.Lock()
        self._energy: torch.Tensor | None = None
        self._files = contextlib.ExitStack()
        self._file: BinaryIO | None = None
        try:
            self._open(values=values, positions=positions, layout=layout)
        except BaseException:
            self._files.close()
            raise

    # ------------------------------------------------------------------------ opening

    def _open(self, *, values: str, positions: str, layout: str) -> None:
        archive, source = load_npz(self.path, self._files)
        with archive:
            self._read_small_arrays(archive, values=values, positions=positions,
                                    layout=layout)
            self._locate_patterns(archive, source)
        self._check_geometry(positions)

    def _read_small_arrays(self, archive: np.lib.npyio.NpzFile, *, values: str,
                           positions: str, layout: str) -> None:
        """Everything but the patterns, as :func:`pinn.data.npz.read_contract` reads it."""
        path, keys = self.path, list(archive.files)

        def load(key: str) -> torch.Tensor:
            return _checks.as_tensor(f"{path.name}: '{key}'", load_array(archive, path, key))

        xcoords, ycoords, start, self.key = read_coordinates(path, keys, load)
        m = xcoords.shape[0]
        self._name = f"{path.name}: '{self.key}'"
        self._m = m
        self._n = self._read_header(archive, layout)  # the pattern size, needed for the probe
        n = self._n

        probe, obj, scan_index, self.counts = read_auxiliary(archive, path, keys, load, n, m,
                                                             values)
        self.probe = probe.to(torch.complex64)
        _checks.check_finite("probe", self.probe)  # as ScanData does
        self.object = None
        if obj is not None:
            self.object = obj.to(torch.complex64)
            _checks.check_finite("object", self.object)
        self.scan_index = (torch.zeros(m, dtype=torch.int64) if scan_index is None
                           else scan_index)

        centre = float(n // 2) if positions == "corner" else 0.0
        self.positions = torch.stack([ycoords, xcoords], dim=1) + centre
        self.positions_start = (None if start is None
                                else torch.stack([start[1], start[0]], dim=1) + centre)

    def _read_header(self, archive: np.lib.npyio.NpzFile, layout: str) -> int:
        """Parse the diffraction member's ``.npy`` header and check shape and dtype (the same
        rules and messages as :func:`pinn.data.read_npz`); returns N."""
        name, m = self._name, self._m
        member = f"{self.key}.npy"
        if member not in archive.zip.namelist():
            raise DataError(f"{name} is not stored as an .npy array; re-create the file with "
                            "numpy.savez or pinn.data.write_npz")
        try:
            self._info, shape, fortran, dtype, self._header_bytes = read_npy_header(archive,
                                                                                    member)
        except READ_ERRORS as exc:
            raise DataError(f"{self.path}: cannot read '{self.key}' (the file is truncated or "
                            f"corrupt: {_oneline(exc)}); re-create the file") from exc
        if dtype.hasobject:
            raise DataError(
                f"{self.path.name}: '{self.key}' is a pickled object array; pinn refuses to "
                "unpickle files (it can run arbitrary code). Re-save it as a numeric array, "
                f"e.g. numpy.asarray({self.key}, dtype=numpy.float32)")
        if dtype.kind == "c":
            as_torch = _checks.as_tensor(name, np.zeros(0, dtype)).dtype  # read_npz's words
            raise DataError(f"{name} is complex ({as_torch}); expected real numbers"
                            f"{_checks.AMPLITUDE_HINT}")
        if dtype.kind == "b":
            raise DataError(f"{name} is boolean; expected real numbers{_checks.AMPLITUDE_HINT}")
        if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise DataError(f"{name} has dtype {dtype}; expected a numeric array (convert it "
                            "with numpy.asarray(..., dtype=float) first)")
        shape = tuple(int(s) for s in shape)
        if len(shape) == 4 and shape[-1] == 1 and layout != "NNM":
            shape = shape[:3]  # (M, N, N, 1) -> (M, N, N): the same bytes
        if len(shape) != 3:
            raise DataError(f"{name} has shape {shape}; expected (M, N, N), (N, N, M) or "
                            "(M, N, N, 1)")
        if math.prod(shape) == 0:
            raise DataError(f"{name} is empty (shape {shape}); expected at least one scan "
                            "point with a non-empty pattern")
        if layout == "NNM" or (layout == "auto" and shape[0] != m and shape[2] == m):
            raise DataError(
                f"{name} stores the patterns in the legacy layout (N, N, M) = {shape}, where a "
                "pattern is not contiguous and cannot be streamed. Read the file in memory "
                "(without --stream / stream=True), or rewrite it once in the canonical "
                "(M, N, N) layout: pinn.data.write_npz(new_path, pinn.data.read_npz(path))")
        if shape[1] != shape[2]:
            raise DataError(f"{name} has patterns of {shape[1]} x {shape[2]} pixels; expected "
                            "square N x N patterns (for an (N, N, M) array pass layout='NNM')")
        if shape[0] != m:
            raise DataError(f"{name} has {shape[0]} patterns (shape {shape} as (M, N, N)) but "
                            f"xcoords has {m} positions; they must agree (wrong layout? pass "
                            "layout='NNM' for (N, N, M) arrays)")
        if fortran and m > 1:
            raise DataError(
                f"{name} is stored in Fortran (column-major) order, where a pattern is not "
                "contiguous and cannot be streamed. Read the file in memory (without --stream "
                "/ stream=True), or rewrite it once in C order: "
                "pinn.data.write_npz(new_path, pinn.data.read_npz(path))")
        self.stored_dtype = dtype
        self._fortran = fortran  # (1, N, N) in Fortran order: each pattern is transposed
        self._pattern_bytes = shape[1] * shape[2] * dtype.itemsize
        claimed = m * self._pattern_bytes
        held = self._info.file_size - self._header_bytes
        if claimed > held:
            raise DataError(f"{self.path}: cannot read '{self.key}' (the file is truncated or "
                            f"corrupt: the header claims {claimed} bytes of data (shape {shape}, "
                            f"{dtype}) but the member holds {held}); re-create the file")
        return shape[1]

    def _locate_patterns(self, archive: np.lib.npyio.NpzFile, source: BinaryIO) -> None:
        """Set ``self._file`` and ``self._offset``: where pattern 0 starts. A compressed
        member is decompressed once into an anonymous temporary file."""
        info = self._info
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                source.seek(info.header_offset)
                signature, name_len, extra_len = _LOCAL_HEADER.unpack(
                    source.read(_LOCAL_HEADER.size))
                if signature != b"PK\x03\x04":
                    raise zipfile.BadZipFile("bad local file header signature")
                self._file = source
                self._offset = (info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
                                + self._header_bytes)
            else:
                plain = self._files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                with archive.zip.open(info) as member:  # checks the CRC at the end
                    shutil.copyfileobj(member, plain, length=1 << 20)
                plain.flush()  # the patterns are read with pread, past Python's buffer
                self._file = plain
                self._offset = self._header_bytes
        except (struct.error, *READ_ERRORS) as exc:
            raise DataError(f"{self.path}: cannot read '{self.key}' (the file is truncated or "
                            f"corrupt: {_oneline(exc)}); re-create the file") from exc
        size = os.fstat(self._file.fileno()).st_size
        end = self._offset + self._m * self._pattern_bytes
        if end > size:
            raise DataError(f"{self.path}: cannot read '{self.key}' (the file is truncated: "
                            f"the patterns end at byte {end} of a {size}-byte file); re-create "
                            "the file")
        self._fd = self._file.fileno()

    def _check_geometry(self, positions: str) -> None:
        coordinates = f"{self.path.name}: 'xcoords'/'ycoords'"
        _checks.check_not_all_equal(coordinates, self.positions)
        if self.object is not None:
            other = "center" if positions == "corner" else "corner"
            _checks.check_windows_inside(
                coordinates, self.positions, "'objectGuess'", tuple(self.object.shape), self.N,
                f"If the coordinates mark window {other}s, read them with positions='{other}' "
                f"(pinn: --positions {other}); if not, 'objectGuess' does not cover the scan: "
                "remove it from the file or pad it")
        self.chunk_patterns = energy_chunk_patterns(self.N, self.chunk_bytes)

    # ------------------------------------------------------------------- ScanSource

    @property
    def N(self) -> int:  # noqa: N802 - the patch size is called N everywhere
        """Pattern side in pixels."""
        return self._n

    @property
    def n_scans(self) -> int:
        """M, the number of patterns."""
        return self._m

    @property
    def closed(self) -> bool:
        return self._file is None

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """Read patterns ``indices`` from the file.

        Args:
            indices: ``(k,)`` int64 in ``[0, M)``, any order, repeats allowed.

        Returns:
            ``(k, N, N)`` float32 amplitudes, zero frequency at pixel ``(N//2, N//2)``, row
            ``i`` the pattern ``indices[i]``; identical to ``read_npz(...).diffraction[indices]``.
            Runs of consecutive indices are read with one system call each; repeated indices
            are read once.

        Raises:
            DataError: an index out of range, a closed stream, a short read (the file was
                truncated since it was opened), or NaN/inf/negative values in a requested
                pattern (the message names the file, the key and the pattern).
        """
        index = check_read_indices(indices, self._m)
        n = self._n
        if index.numel() == 0:
            return torch.zeros(0, n, n, dtype=torch.float32)
        unique, inverse = torch.unique(index, sorted=True, return_inverse=True)
        raw = np.empty((unique.numel(), n, n), dtype=self.stored_dtype)
        buffer = memoryview(raw.reshape(-1).view(np.uint8))
        rows = unique.tolist()
        breaks = [0, *((torch.diff(unique) != 1).nonzero().flatten() + 1).tolist(), len(rows)]
        size = self._pattern_bytes
        for lo, hi in itertools.pairwise(breaks):
            self._read_at(buffer[lo * size:hi * size], self._offset + rows[lo] * size)
        if self._fortran:  # only M == 1 gets here: the one pattern is stored column-major
            raw = np.ascontiguousarray(raw.transpose(0, 2, 1))
        patterns = self._convert(raw, unique)
        if unique.numel() == index.numel() and bool((unique == index).all()):
            return patterns
        return patterns[inverse]

    def pattern_energy(self) -> torch.Tensor:
        """``(M,)`` float64 ``sum_xy amplitude**2`` per pattern, computed once in one pass over
        the file (blocks of :attr:`chunk_patterns`) and cached. It validates every stored
        value on the way, and equals :func:`pinn.data.scan.pattern_energy` of the patterns in
        memory bit for bit (the blocks follow that function's own block boundaries, see
        :func:`energy_blocks`).

        Raises:
            DataError: as :meth:`read`.
        """
        if self._energy is None:
            # filled in place: small tensors kept alive between the blocks' large temporaries
            # would fragment the heap, and the resident set would grow with M
            energy = torch.empty(self._m, dtype=torch.float64)
            for lo, hi in energy_blocks(self._m, self.chunk_patterns):
                energy[lo:hi] = pattern_energy(self.read(torch.arange(lo, hi)))
            self._energy = energy
        return self._energy.clone()

    # ------------------------------------------------------------------------- other

    def to_scan(self) -> ScanData:
        """The whole scan in memory (what :func:`pinn.data.read_npz` returns); needs memory for
        all M patterns."""
        return ScanData(diffraction=self.read(torch.arange(self._m)), positions=self.positions,
                        probe=self.probe, object=self.object, scan_index=self.scan_index,
                        positions_start=self.positions_start, counts=self.counts)

    def close(self) -> None:
        """Close the file (and delete any temporary decompressed copy)."""
        self._file = None
        self._files.close()

    def __enter__(self) -> NpzScanStream:  # noqa: PYI034 (typing.Self needs Python 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"NpzScanStream({str(self.path)!r}, M={self._m}, N={self._n}, "
                f"stored={self.stored_dtype}, counts={self.counts}, {state})")

    def _read_at(self, view: memoryview, offset: int) -> None:
        """Fill ``view`` with the file's bytes from ``offset`` on."""
        if self._file is None:
            raise DataError(f"the stream of {self.path} is closed; open it again")
        done, total = 0, len(view)
        while done < total:
            if hasattr(os, "preadv"):
                got = os.preadv(self._fd, [view[done:]], offset + done)
            else:  # pragma: no cover - platforms without preadv
                with self._lock:
                    self._file.seek(offset + done)
                    got = self._file.readinto(view[done:])
            if not got:
                raise DataError(f"{self.path}: cannot read '{self.key}' (the file ended after "
                                f"{offset + done} bytes; it was truncated); re-create the file")
            done += got

    def _convert(self, raw: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
        """Stored patterns -> float32 amplitudes with the reader's conventions, validated."""
        block = _checks.as_tensor(self._name, raw)
        try:
            amplitude, _, _ = apply_conventions(
                self._name, block, _NO_POSITIONS, None, values="counts" if self.values ==
                "counts" else "amplitude", zero_frequency=self.zero_frequency, positions="center")
        except DataError:
            raise self._bad_values(block.to(torch.float32), rows) from None
        return amplitude

    def _bad_values(self, block: torch.Tensor, rows: torch.Tensor) -> DataError:
        bad = ~torch.isfinite(block)
        if bool(bad.any()):
            local = int(bad.flatten(1).any(dim=1).nonzero()[0])
            pixel = tuple(int(i) for i in bad[local].nonzero()[0])
            return DataError(f"{self._name} holds NaN or infinite value(s) in pattern "
                             f"{int(rows[local])} (first at pixel {pixel}, as stored); remove "
                             "those scan points or fix the values")
        neg = block < 0
        local = int(neg.flatten(1).any(dim=1).nonzero()[0])
        pixel = tuple(int(i) for i in neg[local].nonzero()[0])
        return DataError(f"{self._name} holds negative value(s) in pattern {int(rows[local])} "
                         f"(minimum {float(block[local].min()):.6g} at pixel {pixel}, as "
                         "stored); amplitudes and counts cannot be negative (background "
                         "subtraction? clip them at 0)")


def energy_chunk_patterns(n: int, chunk_bytes: int) -> int:
    """Patterns per block of a streamed energy pass: the largest power of two that divides
    :data:`pinn.data.scan.ENERGY_CHUNK`, with at most ``chunk_bytes`` of float32 ``n x n``
    patterns, and at least 2."""
    per = ENERGY_CHUNK
    while per > 2 and per * n * n * 4 > chunk_bytes:
        per //= 2
    return per


def energy_blocks(m: int, per: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]`` blocks of at most ``per + 1`` patterns covering ``range(m)``, whose
    per-pattern sums equal those of :func:`pinn.data.scan.pattern_energy`'s own blocks of
    :data:`~pinn.data.scan.ENERGY_CHUNK`.

    ``per`` divides ENERGY_CHUNK, so these blocks refine that function's. The blocks must also
    hold a single pattern exactly where that function's do: torch sums a single-output
    reduction with several threads (a different order of additions) but reduces each row of
    a multi-row block whole. So a last block of one pattern is merged into the one before,
    unless that function's last block is a single pattern too.
    """
    bounds = [(lo, min(lo + per, m)) for lo in range(0, m, per)]
    if len(bounds) >= 2 and bounds[-1][1] - bounds[-1][0] == 1 and (m - 1) % ENERGY_CHUNK:
        bounds[-2:] = [(bounds[-2][0], m)]
    return bounds
