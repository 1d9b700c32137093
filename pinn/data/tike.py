"""Reader for tike-style measured scans (``siemens-star-small.npz.bz2`` and the like).

Such a file (optionally bz2-compressed) holds ``data`` (photon counts with zero frequency at
pixel (0, 0), shape ``(M, N, N)`` with optional leading singleton axes), ``probe``
(``(..., N, N)`` complex; the first mode is used) and ``scan`` (``(..., M, 2)``, ``(y, x)``
object pixels of each window's top-left corner). :func:`read_tike_npz` converts all three to
pinn's conventions and can crop the detector to its central ``n x n`` pixels, which also
coarsens the real-space pixel (see the function).
"""

from __future__ import annotations

import bz2
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from pinn.data import _checks
from pinn.data.npz import _READ_ERRORS, _load, _missing
from pinn.data.scan import ScanData, sqrt_counts
from pinn.errors import ConfigError, DataError


def read_tike_npz(
    path: str | os.PathLike,
    *,
    crop_px: int | None = None,
    shift_positions: bool = True,
) -> ScanData:
    """Read a tike-format scan (counts, corner zero frequency, corner positions) as ScanData.

    Conversions: amplitude = ``sqrt(counts)`` (``counts=True``, so ``measured_nphotons`` is
    the mean total count per pattern); ``fftshift`` over the last two axes moves zero
    frequency to pixel ``(N//2, N//2)``; window centre = corner + ``N//2``. With
    ``shift_positions`` the positions are translated so that the smallest window corner is
    object pixel 0 in each axis (tike's scan coordinates may be negative); the shift is
    ``-min(scan, axis=0)``.

    ``crop_px = n`` keeps the central ``n x n`` detector pixels around the zero-frequency
    pixel. A smaller detector means coarser real-space sampling: the object pixel grows by
    ``N / n``. So the positions are multiplied by ``n / N`` (object pixel ``k`` of the new grid
    is ``k * N / n`` of the old one, and the window centre ``N//2`` maps to ``n//2``), and the
    probe is resampled to ``n x n`` by keeping the same central ``n x n`` of its orthonormal
    Fourier transform (so ``fft2(probe_n, norm='ortho')`` is the crop of
    ``fft2(probe_N, norm='ortho')`` and the forward model stays consistent with the counts).

    The file is decompressed (bz2 is detected by its magic bytes; a plain ``.npz`` works too)
    into an anonymous temporary file that is deleted on return, and read with
    ``allow_pickle=False``.

    Args:
        path: the ``.npz`` or ``.npz.bz2`` file.
        crop_px: even size ``n`` with ``2 <= n <= N`` of a centred detector crop, or None.
        shift_positions: translate positions so the windows start at object pixel 0.

    Returns:
        ScanData: ``(M, n, n)`` float32 amplitudes, ``(M, 2)`` float64 ``(y, x)`` centres,
        ``(n, n)`` complex64 probe, no object, ``counts=True``.

    Raises:
        DataError: unreadable/corrupt file, missing keys (``data``, ``probe``, ``scan``), wrong
            shapes, negative or non-finite counts, pickled arrays.
        ConfigError: ``crop_px`` is odd, < 2 or larger than N.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with tempfile.TemporaryFile() as plain:
        try:
            with open(path, "rb") as raw:
                compressed = raw.read(3) == b"BZh"
                raw.seek(0)
                with bz2.open(raw) if compressed else contextlib.nullcontext(raw) as source:
                    shutil.copyfileobj(source, plain, length=1 << 20)
            plain.seek(0)
            archive = np.load(plain, allow_pickle=False)
        except _READ_ERRORS as exc:
            raise DataError(f"{path} is not a readable (bz2-compressed) .npz archive: {exc}"
                            ) from exc
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single array, not an .npz archive")
        with archive:
            keys = list(archive.files)
            for key in ("data", "probe", "scan"):
                if key not in keys:
                    raise _missing(path, keys, key)
            counts, probe, scan = (_checks.as_tensor(f"{path.name}: '{k}'", _load(archive, path, k))
                                   for k in ("data", "probe", "scan"))

    counts = _squeeze_leading(f"{path.name}: 'data'", counts, 3, "(M, N, N)")
    probe = _squeeze_leading(f"{path.name}: 'probe'", probe, 2, "(N, N)", first=True)
    scan = _squeeze_leading(f"{path.name}: 'scan'", scan, 2, "(M, 2)")
    m, n_det = counts.shape[0], counts.shape[-1]
    name = f"{path.name}: 'data'"
    _checks.check_real(name, counts, _checks.AMPLITUDE_HINT)
    _checks.check_nonempty(name, counts)
    if counts.shape[1] != counts.shape[2]:
        raise DataError(f"{name} has patterns of shape {tuple(counts.shape[1:])}; expected N x N")
    counts = counts.to(torch.float32)
    _checks.check_finite(name, counts)
    _checks.check_nonnegative(name, counts)
    _checks.check_shape(f"{path.name}: 'scan'", scan, (m, 2), f"(M, 2) = ({m}, 2), (y, x)")
    _checks.check_real(f"{path.name}: 'scan'", scan)
    _checks.check_shape(f"{path.name}: 'probe'", probe, (n_det, n_det),
                        f"(N, N) = ({n_det}, {n_det}), the detector size")

    corners = scan.to(torch.float64)
    _checks.check_finite(f"{path.name}: 'scan'", corners)
    if shift_positions:
        corners = corners - corners.min(dim=0).values
    amplitude = torch.fft.fftshift(sqrt_counts(counts), dim=(-2, -1))
    centres = corners + n_det // 2
    probe = probe.to(torch.complex64)
    if crop_px is not None:
        n = _crop_size(crop_px, n_det)
        lo = n_det // 2 - n // 2
        amplitude = amplitude[:, lo:lo + n, lo:lo + n]  # (M, n, n)
        centres = centres * (n / n_det)
        probe = fourier_crop(probe, n)
    return ScanData(diffraction=amplitude.contiguous(), positions=centres, probe=probe,
                    counts=True)


def fourier_crop(field: torch.Tensor, size: int) -> torch.Tensor:
    """Resample ``field (..., N, N)`` to ``(..., n, n)`` by cropping its centred spectrum.

    ``fft2(out, norm='ortho')`` equals the central ``n x n`` (around zero frequency) of
    ``fft2(field, norm='ortho')``: the band-limited field on a grid ``N/n`` times coarser,
    with its sample 0 on the old sample 0.

    Args:
        field: ``(..., N, N)`` complex64.
        size: even ``n <= N``.

    Returns:
        ``(..., n, n)`` complex64.
    """
    n_old = field.shape[-1]
    spectrum = torch.fft.fftshift(torch.fft.fft2(field, norm="ortho"), dim=(-2, -1))
    lo = n_old // 2 - size // 2
    spectrum = spectrum[..., lo:lo + size, lo:lo + size]  # (..., n, n)
    cropped = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), norm="ortho")
    return cropped.to(torch.complex64)


def _crop_size(crop_px: object, n_det: int) -> int:
    if isinstance(crop_px, bool) or not isinstance(crop_px, (int, np.integer)):
        raise ConfigError(f"crop_px must be an int, got {crop_px!r}")
    n = int(crop_px)
    if n < 2 or n > n_det or n % 2:
        raise ConfigError(f"crop_px={n} is not an even size between 2 and the detector size "
                          f"{n_det}; choose e.g. {min(64, n_det)}")
    return n


def _squeeze_leading(name: str, x: torch.Tensor, ndim: int, layout: str,
                     first: bool = False) -> torch.Tensor:
    """Drop leading singleton axes down to ``ndim`` (with ``first``, take index 0 instead)."""
    while x.dim() > ndim and (first or x.shape[0] == 1):
        x = x[0]
    if x.dim() != ndim:
        raise DataError(f"{name} has shape {tuple(x.shape)}; expected {layout} (leading "
                        "singleton axes are allowed)")
    return x
