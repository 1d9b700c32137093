"""Reader for tike-style measured scans (``siemens-star-small.npz.bz2`` and the like).

Such a file (optionally bz2-compressed) holds ``data`` (photon counts with zero frequency at
pixel (0, 0), shape ``(M, N, N)`` with optional leading singleton axes), ``probe``
(tike's ``(..., 1, 1, K, N, N)`` complex: K incoherent modes, all kept) and ``scan`` (``(..., M, 2)``, ``(y, x)``
object pixels of each window's top-left corner). :func:`read_tike_npz` converts all three to
pinn's conventions and can crop the detector (:func:`pinn.data.crop.crop_scan`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pinn.data import _checks
from pinn.data.crop import crop_scan
from pinn.data.npz import apply_conventions
from pinn.data.safe_npz import check_options, load_array, missing_key, open_npz
from pinn.data.scan import ScanData
from pinn.errors import DataError

KEYS = ("data", "probe", "scan")


def read_tike_npz(
    path: str | os.PathLike,
    *,
    values: str = "counts",
    zero_frequency: str = "corner",
    positions: str = "corner",
    crop_px: int | None = None,
    shift_positions: bool = True,
) -> ScanData:
    """Read a tike-format scan as ScanData.

    Defaults follow tike: ``values='counts'`` (amplitude = ``sqrt(counts)``, ``counts=True``,
    so ``measured_nphotons`` is the mean total count per pattern), ``zero_frequency='corner'``
    (``fftshift`` moves zero frequency to pixel ``(N//2, N//2)``) and ``positions='corner'``
    (window centre = corner + ``N//2``); the options mean what they mean in
    :func:`pinn.data.read_npz`. With ``shift_positions`` the positions are then translated so
    that the smallest window corner is object pixel 0 in each axis (tike's coordinates may be
    negative); the shift is ``-min(scan, axis=0)``.

    ``crop_px = n`` keeps the central ``n x n`` detector pixels and moves the probe and the
    positions to the correspondingly coarser real-space grid (:func:`pinn.data.crop.crop_scan`:
    positions times ``n / N``, probe Fourier-resampled).

    Args:
        path: the ``.npz`` or ``.npz.bz2`` file (decompressed to a temporary file that is
            deleted on return; read with ``allow_pickle=False``).
        values, zero_frequency, positions: as in :func:`pinn.data.read_npz`.
        crop_px: even size ``n`` of a centred detector crop, or None.
        shift_positions: translate positions so the windows start at object pixel 0.

    Returns:
        ScanData: ``(M, n, n)`` float32 amplitudes, ``(M, 2)`` float64 ``(y, x)`` centres,
        complex64 probe ``(n, n)``, or ``(K, n, n)`` when the file has K > 1 modes, no object,
        ``counts`` as ``values`` says.

    Raises:
        DataError: unreadable/corrupt file, missing keys (``data``, ``probe``, ``scan``), wrong
            shapes, negative or non-finite counts, pickled arrays, all positions the same.
        ConfigError: a bad option or ``crop_px``.
    """
    check_options(values=values, zero_frequency=zero_frequency, positions=positions)
    path = Path(path)
    with open_npz(path) as archive:
        scan = read_tike(archive, path, values=values, zero_frequency=zero_frequency,
                         positions=positions, shift_positions=shift_positions)
    return scan if crop_px is None else crop_scan(scan, crop_px)


def is_tike(archive: np.lib.npyio.NpzFile) -> bool:
    """Whether an open archive looks like a tike scan (``data``, ``probe``, ``scan`` and no
    ``xcoords``)."""
    keys = set(archive.files)
    return set(KEYS) <= keys and "xcoords" not in keys


def read_tike(archive: np.lib.npyio.NpzFile, path: Path, *, values: str = "counts",
              zero_frequency: str = "corner", positions: str = "corner",
              shift_positions: bool = True) -> ScanData:
    """:func:`read_tike_npz` (without the crop) on an archive opened by
    :func:`pinn.data.safe_npz.open_npz`; ``path`` names it in messages."""
    check_options(values=values, zero_frequency=zero_frequency, positions=positions)
    keys = list(archive.files)
    for key in KEYS:
        if key not in keys:
            raise missing_key(path, keys, key)
    counts, probe, scan = (_checks.as_tensor(f"{path.name}: '{k}'", load_array(archive, path, k))
                           for k in KEYS)

    name = f"{path.name}: 'data'"
    counts = _squeeze_leading(name, counts, 3, "(M, N, N)")
    probe = probe_modes(f"{path.name}: 'probe'", probe)
    scan = _squeeze_leading(f"{path.name}: 'scan'", scan, 2, "(M, 2)")
    m, n_det = counts.shape[0], counts.shape[-1]
    _checks.check_real(name, counts, _checks.AMPLITUDE_HINT)
    _checks.check_nonempty(name, counts)
    if counts.shape[1] != counts.shape[2]:
        raise DataError(f"{name} has patterns of shape {tuple(counts.shape[1:])}; expected N x N")
    _checks.check_real(f"{path.name}: 'scan'", scan)
    _checks.check_shape(f"{path.name}: 'scan'", scan, (m, 2), f"(M, 2) = ({m}, 2), (y, x)")
    _checks.check_probe(f"{path.name}: 'probe'", probe, n_det)
    corners = scan.to(torch.float64)
    _checks.check_finite(f"{path.name}: 'scan'", corners)
    if shift_positions:
        corners = corners - corners.min(dim=0).values
    amplitude, centres, _ = apply_conventions(name, counts, corners, None, values=values,
                                              zero_frequency=zero_frequency, positions=positions)
    _checks.check_not_all_equal(f"{path.name}: 'scan'", centres)
    return ScanData(diffraction=amplitude, positions=centres, probe=probe,
                    counts=values == "counts")


def probe_modes(name: str, probe: torch.Tensor) -> torch.Tensor:
    """A probe stored as ``(N, N)``, ``(K, N, N)`` or tike's ``(..., 1, 1, K, N, N)`` as
    ``(K, N, N)`` modes, or ``(N, N)`` for one mode: the axes before the mode axis (views,
    eigen-probes) take index 0. Raises DataError for a non-square or empty probe."""
    while probe.dim() > 3 and probe.shape[0] >= 1:
        probe = probe[0]
    if probe.dim() == 3 and probe.shape[0] == 1:
        probe = probe[0]
    if probe.dim() not in (2, 3) or probe.shape[-1] != probe.shape[-2] or probe.numel() == 0:
        raise DataError(f"{name} has shape {tuple(probe.shape)}; expected a square (N, N) probe "
                        "or (..., K, N, N) probe modes with K >= 1")
    return probe


def _squeeze_leading(name: str, x: torch.Tensor, ndim: int, layout: str) -> torch.Tensor:
    """Drop leading singleton axes down to ``ndim``."""
    while x.dim() > ndim and x.shape[0] == 1:
        x = x[0]
    if x.dim() != ndim:
        raise DataError(f"{name} has shape {tuple(x.shape)}; expected {layout} (leading "
                        "singleton axes are allowed)")
    return x
