"""One entry point for scan files: the NPZ contract or a tike scan, plain or bz2-compressed.

:func:`load_scan` opens the file once, recognises its format by its keys, applies the
format's default conventions unless told otherwise, optionally swaps in a probe from another
file, and optionally crops the detector. This is what the ``pinn`` command reads data with.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pinn.data import _checks
from pinn.data.crop import crop_scan
from pinn.data.npz import read_contract
from pinn.data.safe_npz import check_options, load_array, missing_key, open_npz
from pinn.data.scan import ScanData
from pinn.data.stream import NpzScanStream
from pinn.data.tike import is_tike, probe_modes, read_tike
from pinn.errors import ConfigError, DataError

PROBE_KEYS = ("probe_modes", "probeGuess", "probe")


def load_scan(
    path: str | os.PathLike,
    *,
    values: str | None = None,
    zero_frequency: str | None = None,
    positions: str | None = None,
    layout: str = "auto",
    crop_px: int | None = None,
    probe_path: str | os.PathLike | None = None,
    stream: bool = False,
) -> ScanData | NpzScanStream:
    """Read a scan file in whichever supported format it is.

    Formats: a tike scan (keys ``data``, ``probe``, ``scan``, no ``xcoords``; defaults
    ``values='counts'``, ``zero_frequency='corner'``, ``positions='corner'``, positions shifted
    to start at 0, see :func:`pinn.data.read_tike_npz`), else the NPZ contract (defaults
    ``values='auto'``, ``'center'``, ``'center'``, see :func:`pinn.data.read_npz`). Either may
    be bz2-compressed. An option left at None takes the format's default.

    Args:
        path: the scan file.
        values: ``'amplitude'``, ``'counts'`` or ``'auto'`` (NPZ contract only), or None.
        zero_frequency: ``'center'`` or ``'corner'``, or None.
        positions: ``'center'`` or ``'corner'``, or None.
        layout: diffraction layout of an NPZ-contract file (see :func:`pinn.data.read_npz`).
        crop_px: keep the central ``crop_px x crop_px`` of every pattern and move the probe,
            object and positions to the coarser real-space grid (:func:`pinn.data.crop_scan`).
        probe_path: take the probe, with all its modes, from this file instead (keys
            ``probe_modes``, ``probeGuess`` or ``probe``, see :func:`read_probe`). Its modes
            must be ``N x N`` for the file's patterns (they are then cropped with them) or
            already ``crop_px x crop_px``.
        stream: for an NPZ-contract file, return an open
            :class:`~pinn.data.stream.NpzScanStream` (same options) that reads the patterns
            from the file on demand, for scans larger than memory; close it when done. Not
            with ``crop_px``; a ``probe_path`` probe must then be N x N. A tike scan is read
            into memory all the same (a ScanData is a :class:`~pinn.data.ScanSource` too).
            A bz2-compressed file is decompressed twice (to recognise it, then to stream it).

    Returns:
        ScanData in pinn's conventions (or, with ``stream=True``, an NpzScanStream).

    Raises:
        DataError: unreadable file or probe file, or any validation failure of the readers
            (a stream validates the patterns' values as it reads them).
        ConfigError: a bad option or ``crop_px``, or ``crop_px`` with ``stream=True``.
    """
    options = {"values": values, "zero_frequency": zero_frequency, "positions": positions}
    chosen = {k: v for k, v in options.items() if v is not None}
    check_options(layout=layout, **chosen)
    if stream and crop_px is not None:
        raise ConfigError("cropping the patterns (crop_px / --crop-patterns) is not available "
                          "when streaming; crop the file once in memory (pinn.data.crop_scan "
                          "and write_npz), or read it without streaming")
    path = Path(path)
    with open_npz(path) as archive:
        tike = is_tike(archive)
        if tike:
            if chosen.get("values") == "auto":
                raise DataError(f"{path.name} is a tike scan, whose 'data' are counts; pass "
                                "values='counts' or 'amplitude', not 'auto'")
            scan = read_tike(archive, path, **chosen)
        elif not stream:
            scan = read_contract(archive, path, layout=layout, **chosen)
    if stream and not tike:
        return _stream(path, layout=layout, probe_path=probe_path, **chosen)
    probe = None if probe_path is None else read_probe(probe_path)
    if probe is not None and probe.shape[-2:] == (scan.N, scan.N):
        scan = _with_probe(scan, probe)
        probe = None
    if crop_px is not None:
        scan = crop_scan(scan, crop_px)
    if probe is not None:
        if probe.shape[-2:] != (scan.N, scan.N):
            raise DataError(f"the probe in {Path(probe_path).name} is {tuple(probe.shape)} but "
                            f"the patterns are {scan.N} x {scan.N}; use a probe of the "
                            "pattern size (or of the crop size)")
        scan = _with_probe(scan, probe)
    return scan


def read_probe(path: str | os.PathLike) -> torch.Tensor:
    """The probe stored in an NPZ (plain or bz2), with all its modes.

    Keys, in order of preference: ``probe_modes`` (``(K, N, N)``, all modes, as in the
    solver's reference files and :func:`pinn.data.write_npz`), ``probeGuess`` (``(N, N)`` or
    ``(K, N, N)``), ``probe`` (tike's ``(..., K, N, N)``: axes before the mode axis take
    index 0). A single mode comes back as ``(N, N)``.

    Returns:
        ``(N, N)`` or ``(K, N, N)`` (K >= 2) complex64.

    Raises:
        DataError: unreadable file, none of the keys present, not square, no mode, or
            non-finite values.
    """
    path = Path(path)
    with open_npz(path) as archive:
        keys = list(archive.files)
        key = next((k for k in PROBE_KEYS if k in keys), None)
        if key is None:
            raise missing_key(path, keys, "probeGuess", also="or 'probe' or 'probe_modes'")
        probe = _checks.as_tensor(f"{path.name}: '{key}'", load_array(archive, path, key))
    name = f"{path.name}: '{key}'"
    probe = probe_modes(name, probe).to(torch.complex64)
    _checks.check_finite(name, probe)
    return probe


def _stream(path: Path, *, layout: str, probe_path: str | os.PathLike | None,
            **options: str) -> NpzScanStream:
    probe = None if probe_path is None else read_probe(probe_path)
    source = NpzScanStream(path, layout=layout, **options)
    if probe is not None:
        if probe.shape[-2:] != (source.N, source.N):
            source.close()
            raise DataError(f"the probe in {Path(probe_path).name} is {tuple(probe.shape)} but "
                            f"the patterns are {source.N} x {source.N}; use a probe of the "
                            "pattern size")
        source.probe = probe
    return source


def _with_probe(scan: ScanData, probe: torch.Tensor) -> ScanData:
    return ScanData(diffraction=scan.diffraction, positions=scan.positions, probe=probe,
                    object=scan.object, scan_index=scan.scan_index,
                    positions_start=scan.positions_start, counts=scan.counts)
