"""The NPZ data contract of PtychoPINN: read (with every legacy layout) and write (atomically).

A scan file holds, per the reference (docs/DESIGN.md §7.1):

- ``diffraction`` (legacy ``diff3d``): ``(M, N, N)``, legacy ``(N, N, M)`` or ``(M, N, N, 1)``,
  the diffraction amplitude (or counts, see ``values``);
- ``xcoords``, ``ycoords``: ``(M,)`` positions, x = column, y = row;
- ``xcoords_start``, ``ycoords_start``: ``(M,)``, optional nominal positions;
- ``probeGuess``: ``(N, N)`` complex probe, or ``(K, N, N)`` incoherent probe modes;
- ``probe_modes``: ``(K, N, N)``, optional: all probe modes (then ``probeGuess`` may hold only
  the dominant one, as :func:`write_npz` and the solver's reference files store them);
- ``objectGuess``: ``(H, W)``, optional object;
- ``scan_index``: ``(M,)`` int, optional, the scan each pattern belongs to.

Other keys are ignored, notably the reference's ``_metadata`` (a pickled object array) and
``Y``. Files (plain or bz2-compressed) are opened with ``allow_pickle=False`` only
(:mod:`pinn.data.safe_npz`): pickled arrays in the keys above are refused, because unpickling a
file can run arbitrary code. :func:`write_npz` writes the canonical form plus the 0-d bool
``amplitude_from_counts`` (whether ``diffraction**2`` are photon counts), so a written scan
reads back identically.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pinn.atomic import atomic_open
from pinn.data import _checks
from pinn.data.safe_npz import check_options, load_array, missing_key, open_npz
from pinn.data.scan import ScanData, sqrt_counts
from pinn.errors import DataError
from pinn.ops.modes import dominant_mode

COUNTS_KEY = "amplitude_from_counts"
MODES_KEY = "probe_modes"


def read_npz(
    path: str | os.PathLike,
    *,
    values: str = "auto",
    zero_frequency: str = "center",
    positions: str = "center",
    layout: str = "auto",
) -> ScanData:
    """Read a scan NPZ into a :class:`ScanData` in pinn's conventions.

    Args:
        path: the ``.npz`` file (a bz2-compressed ``.npz.bz2`` is decompressed to a temporary
            file first; bz2 is recognised by its magic bytes).
        values: what the diffraction array holds. ``'amplitude'``: amplitude, used as is
            (``counts=False``). ``'counts'``: photon counts (intensity); the amplitude is
            ``sqrt(counts)`` and ``counts=True``. ``'auto'`` (default): amplitude, as the
            reference always assumes; ``counts`` is taken from the ``amplitude_from_counts``
            flag that :func:`write_npz` stores (False when absent).
        zero_frequency: ``'center'`` (zero frequency at pixel ``(N//2, N//2)``, the contract)
            or ``'corner'`` (at ``(0, 0)``, as written by many solvers; ``fftshift`` is applied
            over the last two axes).
        positions: ``'center'``: the coordinates are the object pixel under each window's
            centre pixel ``N//2`` (the contract); ``'corner'``: they are the window's top-left
            corner, and ``N//2`` is added to every coordinate (start coordinates included).
        layout: ``'auto'``: ``(M, N, N)``; ``(M, N, N, 1)`` is squeezed; ``(N, N, M)`` is
            transposed when axis 0 != M and the last axis == M, with ``M = len(xcoords)``
            (so a cube ``(M, M, M)`` counts as ``(M, N, N)``). ``'MNN'`` or ``'NNM'`` force
            the layout.

    Returns:
        ScanData with float32 amplitudes ``(M, N, N)``, float64 ``(y, x)`` positions, the
        complex64 probe, the object if present, ``scan_index`` (zeros if absent) and the
        start positions if present.

    Raises:
        ConfigError: an option is not one of the values above.
        DataError: the file is missing, not a zip/NPZ, truncated or corrupt; a needed key is
            missing (the message suggests the right name) or holds a pickled object array;
            an array has the wrong rank, shape or dtype (complex diffraction), lengths disagree,
            values are NaN/inf or negative, arrays are empty, the probe is not N x N, all
            positions are the same point, or (with ``objectGuess``) a window leaves the object.
            Some repeated positions are accepted (repeated exposures, several scans).
    """
    check_options(values=values, zero_frequency=zero_frequency, positions=positions, layout=layout)
    path = Path(path)
    with open_npz(path) as archive:
        return read_contract(archive, path, values=values, zero_frequency=zero_frequency,
                             positions=positions, layout=layout)


def read_contract(archive: np.lib.npyio.NpzFile, path: Path, *, values: str = "auto",
                  zero_frequency: str = "center", positions: str = "center",
                  layout: str = "auto") -> ScanData:
    """:func:`read_npz` on an archive already opened by :func:`open_npz` (``path`` names
    it in messages). Same options, result and errors."""
    check_options(values=values, zero_frequency=zero_frequency, positions=positions, layout=layout)
    keys = list(archive.files)

    def load(key: str) -> torch.Tensor:
        return _checks.as_tensor(f"{path.name}: '{key}'", load_array(archive, path, key))

    xcoords, ycoords, start, dkey = read_coordinates(path, keys, load)
    m = xcoords.shape[0]
    diffraction = _diffraction(f"{path.name}: '{dkey}'", load(dkey), m, layout)
    n = diffraction.shape[-1]
    probe, obj, scan_index, from_counts = read_auxiliary(archive, path, keys, load, n, m,
                                                         values)

    yx = torch.stack([ycoords, xcoords], dim=1)
    yx_start = None if start is None else torch.stack([start[1], start[0]], dim=1)
    diffraction, yx, yx_start = apply_conventions(
        f"{path.name}: '{dkey}'", diffraction, yx, yx_start, values=values,
        zero_frequency=zero_frequency, positions=positions)
    coordinates = f"{path.name}: 'xcoords'/'ycoords'"
    _checks.check_not_all_equal(coordinates, yx)
    if obj is not None:
        other = "center" if positions == "corner" else "corner"
        _checks.check_windows_inside(
            coordinates, yx, "'objectGuess'", tuple(obj.shape), n,
            f"If the coordinates mark window {other}s, read them with positions='{other}' "
            f"(pinn: --positions {other}); if not, 'objectGuess' does not cover the scan: "
            "remove it from the file or pad it")
    return ScanData(diffraction=diffraction, positions=yx, probe=probe, object=obj,
                    scan_index=scan_index, positions_start=yx_start, counts=from_counts)


def read_coordinates(path: Path, keys: list[str], load: Callable[[str], torch.Tensor],
                     ) -> tuple[torch.Tensor, torch.Tensor,
                                tuple[torch.Tensor, torch.Tensor] | None, str]:
    """The contract's coordinates and the name of its diffraction key, validated (shared by
    the readers): ``(xcoords (M,), ycoords (M,), (xcoords_start, ycoords_start) or None,
    'diffraction' or 'diff3d')``. ``load(key)`` reads one array as a tensor.

    Raises:
        DataError: missing keys (with a suggestion), malformed or disagreeing coordinates.
    """
    xcoords, ycoords = _coordinate_pair(path, keys, load, "xcoords", "ycoords", None)
    start = None
    if "xcoords_start" in keys or "ycoords_start" in keys:
        start = _coordinate_pair(path, keys, load, "xcoords_start", "ycoords_start",
                                 xcoords.shape[0])
    dkey = next((k for k in ("diff3d", "diffraction") if k in keys), None)
    if dkey is None:
        raise missing_key(path, keys, "diffraction", also="or the legacy 'diff3d'")
    return xcoords, ycoords, start, dkey


def read_auxiliary(archive: np.lib.npyio.NpzFile, path: Path, keys: list[str],
                   load: Callable[[str], torch.Tensor], n: int, m: int, values: str,
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, bool]:
    """The contract's probe, optional object and scan index, and whether the values are
    counts, validated for N = ``n`` and M = ``m`` (shared by the readers):
    ``(probe (N, N) or (K, N, N), objectGuess (H, W) or None, scan_index (M,) int64 or None,
    from_counts)``; the arrays keep their stored dtypes. The probe is ``probe_modes`` when the
    file has it, else ``probeGuess`` as stored.

    Raises:
        DataError: a missing probe, wrong shapes, NaN/inf, a non-integral scan index, a
            malformed counts flag.
    """
    if "probeGuess" not in keys:
        raise missing_key(path, keys, "probeGuess")
    probe = _checks.check_probe(f"{path.name}: 'probeGuess'", load("probeGuess"), n)
    if MODES_KEY in keys:  # all modes, beside the dominant one in probeGuess
        probe = load(MODES_KEY)
        if probe.dim() != 3:
            raise DataError(f"{path.name}: '{MODES_KEY}' has shape {tuple(probe.shape)}; "
                            f"expected (K, {n}, {n}) probe modes")
        probe = _checks.check_probe(f"{path.name}: '{MODES_KEY}'", probe, n)

    obj = None
    if "objectGuess" in keys:
        obj = load("objectGuess")
        if obj.dim() != 2 or obj.numel() == 0:
            raise DataError(f"{path.name}: 'objectGuess' has shape {tuple(obj.shape)}; "
                            "expected a non-empty (H, W) image (or drop the key)")
        _checks.check_finite(f"{path.name}: 'objectGuess'", obj)

    scan_index = None
    if "scan_index" in keys:
        scan_index = load("scan_index")
        _checks.check_shape(f"{path.name}: 'scan_index'", scan_index, (m,),
                            f"(M,) = ({m},), one entry per scan point")
        scan_index = _checks.check_integral(f"{path.name}: 'scan_index'", scan_index)

    from_counts = values == "counts"
    if values == "auto" and COUNTS_KEY in keys:
        flag = load_array(archive, path, COUNTS_KEY)
        if flag.shape != () or flag.dtype != bool:
            raise DataError(f"{path.name}: '{COUNTS_KEY}' must be a 0-d bool, got shape "
                            f"{flag.shape} dtype {flag.dtype}; fix or remove the key")
        from_counts = bool(flag)
    return probe, obj, scan_index, from_counts


def apply_conventions(
    name: str,
    diffraction: torch.Tensor,
    positions_yx: torch.Tensor,
    start_yx: torch.Tensor | None,
    *,
    values: str,
    zero_frequency: str,
    positions: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Convert stored patterns and positions to pinn's conventions (shared by the readers).

    Args:
        name: how to name the diffraction array in messages.
        diffraction: ``(M, N, N)`` real, as stored.
        positions_yx, start_yx: ``(M, 2)`` float64 ``(y, x)`` as stored (start may be None).
        values: ``'counts'`` (take ``sqrt``), else the values are amplitudes.
        zero_frequency: ``'corner'`` applies ``fftshift`` over the last two axes.
        positions: ``'corner'`` adds ``N//2`` to every coordinate.

    Returns:
        ``(amplitude (M, N, N) float32, positions, start)``.

    Raises:
        DataError: NaN/inf or negative values.
    """
    diffraction = diffraction.to(torch.float32)
    _checks.check_finite(name, diffraction)
    _checks.check_nonnegative(name, diffraction)
    if values == "counts":
        diffraction = sqrt_counts(diffraction)
    if zero_frequency == "corner":
        diffraction = torch.fft.fftshift(diffraction, dim=(-2, -1))
    centre = float(diffraction.shape[-1] // 2) if positions == "corner" else 0.0
    start_yx = None if start_yx is None else start_yx + centre
    return diffraction, positions_yx + centre, start_yx


def write_npz(path: str | os.PathLike, scan: ScanData, *, compress: bool = False) -> None:
    """Write ``scan`` in the canonical NPZ contract, atomically.

    Keys: ``diffraction`` (M, N, N) float32 amplitude with zero frequency at the centre;
    ``xcoords``, ``ycoords`` (M,) float64 window centres (x = column, y = row);
    ``xcoords_start``, ``ycoords_start`` (the start positions, or the positions when there
    are none, since the reference's loader requires them); ``probeGuess`` (N, N) complex64
    (the dominant mode of a mixed-state probe, what the reference reads); ``probe_modes``
    (K, N, N) complex64, all modes, when the probe is a ``(K, N, N)`` stack;
    ``objectGuess`` (H, W) complex64 when present; ``scan_index`` (M,) int64;
    ``amplitude_from_counts`` 0-d bool (``scan.counts``). No object arrays, nothing pickled.

    The archive is written atomically (:func:`pinn.atomic.atomic_open`: a temporary file in
    the destination's directory, flushed and fsynced, then renamed over ``path``): a crash
    leaves the old file intact and never a half-written one; the temporary file is removed on
    any error. ``path`` is used as given (no ``.npz`` is appended).

    Args:
        path: destination file; its directory must exist.
        scan: the scan to write.
        compress: zip-deflate the arrays (smaller, slower).

    Raises:
        DataError: ``scan`` is not a ScanData, or the directory does not exist.
        OSError: the write itself failed (disk full, permissions); ``path`` is unchanged.
    """
    if not isinstance(scan, ScanData):
        raise DataError(f"write_npz needs a ScanData, got {type(scan).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: the directory {path.parent} does not exist; "
                        "create it first")
    start = scan.positions if scan.positions_start is None else scan.positions_start
    arrays = {
        "diffraction": scan.diffraction.numpy().astype(np.float32, copy=False),
        "xcoords": scan.positions[:, 1].numpy().astype(np.float64),
        "ycoords": scan.positions[:, 0].numpy().astype(np.float64),
        "xcoords_start": start[:, 1].numpy().astype(np.float64),
        "ycoords_start": start[:, 0].numpy().astype(np.float64),
        "probeGuess": dominant_mode(scan.probe).numpy().astype(np.complex64, copy=False),
        "scan_index": scan.scan_index.numpy().astype(np.int64, copy=False),
        COUNTS_KEY: np.array(scan.counts, dtype=bool),
    }
    if scan.probe.dim() == 3:
        arrays[MODES_KEY] = scan.probe.numpy().astype(np.complex64, copy=False)
    if scan.object is not None:
        arrays["objectGuess"] = scan.object.numpy().astype(np.complex64, copy=False)
    save = np.savez_compressed if compress else np.savez
    with atomic_open(path) as handle:
        save(handle, **arrays)


def _coordinate_pair(path, keys, load, xkey, ykey, m):
    for key in (xkey, ykey):
        if key not in keys:
            raise missing_key(path, keys, key)
    xs, ys = load(xkey), load(ykey)
    for key, c in ((xkey, xs), (ykey, ys)):
        name = f"{path.name}: '{key}'"
        _checks.check_real(name, c)
        if c.dim() != 1:
            raise DataError(f"{name} has shape {tuple(c.shape)}; expected (M,): one coordinate "
                            "per scan point (flatten it)")
        _checks.check_nonempty(name, c)
        _checks.check_finite(name, c)
    if xs.shape != ys.shape or (m is not None and xs.shape[0] != m):
        expect = xs.shape[0] if m is None else m
        raise DataError(f"{path.name}: '{xkey}' has {xs.shape[0]} entries and '{ykey}' "
                        f"{ys.shape[0]}; expected {expect} each (one per scan point)")
    return xs.to(torch.float64), ys.to(torch.float64)


def _diffraction(name: str, d: torch.Tensor, m: int, layout: str) -> torch.Tensor:
    _checks.check_real(name, d, _checks.AMPLITUDE_HINT)
    if d.dim() == 4 and d.shape[-1] == 1 and layout != "NNM":
        d = d[..., 0]  # (M, N, N, 1) -> (M, N, N)
    if d.dim() != 3:
        raise DataError(f"{name} has shape {tuple(d.shape)}; expected (M, N, N), (N, N, M) or "
                        "(M, N, N, 1)")
    _checks.check_nonempty(name, d)
    if layout == "NNM" or (layout == "auto" and d.shape[0] != m and d.shape[2] == m):
        d = d.permute(2, 0, 1)  # (N, N, M) -> (M, N, N)
    if d.shape[1] != d.shape[2]:
        raise DataError(f"{name} has patterns of {d.shape[1]} x {d.shape[2]} pixels; expected "
                        "square N x N patterns (for an (N, N, M) array pass layout='NNM')")
    if d.shape[0] != m:
        raise DataError(f"{name} has {d.shape[0]} patterns (shape {tuple(d.shape)} as (M, N, N)) "
                        f"but xcoords has {m} positions; they must agree (wrong layout? pass "
                        "layout='NNM' for (N, N, M) arrays)")
    return d.contiguous()
