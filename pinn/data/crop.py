"""Cropping the detector: keep the central ``n x n`` of every pattern, consistently.

A smaller detector records a smaller band of spatial frequencies, so the real-space pixel
grows by ``N / n``: the object, the probe and the positions all move to a grid ``N / n`` times
coarser. :func:`crop_scan` does all of it; :func:`fourier_crop` is the resampling (keep the
central part of the spectrum), which puts the new sample 0 on the old sample 0.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F

from pinn.data.scan import ScanData
from pinn.errors import ConfigError


def crop_scan(scan: ScanData, crop_px: int) -> ScanData:
    """The scan as seen by the central ``crop_px x crop_px`` detector pixels.

    With ``n = crop_px`` and ``N = scan.N``:

    - diffraction: the centred ``n x n`` crop around zero frequency (pixel ``N//2`` becomes
      ``n//2``), values unchanged (counts stay counts);
    - positions (and start positions): multiplied by ``n / N`` (old object pixel ``y`` is new
      pixel ``y * n / N``; the window centre ``N//2`` maps to ``n//2``);
    - probe: resampled so that its orthonormal far field is exactly the crop of the old one
      (:func:`fourier_crop` with ``norm='ortho'``): the forward model still predicts the kept
      counts;
    - object: resampled by the same spectrum crop with its mean value kept (``norm='forward'``)
      after replicating its last rows/columns up to a multiple of ``N / gcd(N, n)``, so that
      its new size is exactly ``n / N`` of the padded one.

    Args:
        scan: the scan.
        crop_px: even size ``2 <= n <= N`` (N even too: only then does the window centre
            ``N//2`` map onto ``n//2``); ``n == N`` returns ``scan``.

    Returns:
        A new ScanData (``counts`` and ``scan_index`` unchanged).

    Raises:
        ConfigError: ``crop_px`` is not an int, has the wrong parity, or is out of range.
    """
    n_old = scan.N
    n = _crop_size(crop_px, n_old)
    if n == n_old:
        return scan
    lo = n_old // 2 - n // 2
    ratio = n / n_old
    obj = None
    if scan.object is not None:
        step = n_old // math.gcd(n_old, n)
        height, width = scan.object.shape
        pad_h, pad_w = (-height) % step, (-width) % step
        parts = torch.view_as_real(scan.object).permute(2, 0, 1)[None]  # (1, 2, H, W)
        padded = F.pad(parts, (0, pad_w, 0, pad_h), mode="replicate")[0].permute(1, 2, 0)
        padded = torch.view_as_complex(padded.contiguous())  # (H', W') complex
        size = ((height + pad_h) * n // n_old, (width + pad_w) * n // n_old)
        obj = fourier_crop(padded, size, norm="forward")
    return ScanData(
        diffraction=scan.diffraction[:, lo:lo + n, lo:lo + n].contiguous(),
        positions=scan.positions * ratio,
        probe=fourier_crop(scan.probe, (n, n)),
        object=obj,
        scan_index=scan.scan_index,
        positions_start=None if scan.positions_start is None else scan.positions_start * ratio,
        counts=scan.counts,
    )


def fourier_crop(field: torch.Tensor, size: int | tuple[int, int], norm: str = "ortho"
                 ) -> torch.Tensor:
    """Resample ``field (..., H, W)`` to ``(..., h, w)`` by keeping its central spectrum.

    ``fft2(out, norm=norm)`` equals the central ``h x w`` (around zero frequency, pixel
    ``H//2`` of the shifted spectrum going to ``h//2``) of ``fft2(field, norm=norm)``: the
    band-limited field sampled on a grid ``H/h`` times coarser, its sample 0 on the old sample
    0. ``norm='ortho'`` keeps the total energy ``sum |field|**2`` of a band-limited field (right
    for a probe, whose far field must keep predicting the same counts); ``norm='forward'``
    keeps the mean value (right for an object transmission).

    Args:
        field: ``(..., H, W)`` complex (real is promoted).
        size: ``h`` or ``(h, w)``, each between 1 and the input's.
        norm: ``'ortho'`` or ``'forward'``.

    Returns:
        ``(..., h, w)`` complex64.

    Raises:
        ConfigError: a size is larger than the input or non-positive.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    height, width = field.shape[-2:]
    for new, old in ((h, height), (w, width)):
        if not 0 < new <= old:
            raise ConfigError(f"cannot Fourier-crop {old} samples to {new}; use a size between "
                              f"1 and {old}")
    spectrum = torch.fft.fftshift(torch.fft.fft2(field.to(torch.complex64), norm=norm),
                                  dim=(-2, -1))
    top, left = height // 2 - h // 2, width // 2 - w // 2
    spectrum = spectrum[..., top:top + h, left:left + w]  # (..., h, w)
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), norm=norm).to(
        torch.complex64)


def _crop_size(crop_px: object, n_det: int) -> int:
    try:
        n = operator.index(crop_px)  # ints and NumPy integers, not floats
    except TypeError:
        n = None
    if n is None or isinstance(crop_px, bool):
        raise ConfigError(f"crop_px must be an int, got {crop_px!r}")
    if n_det % 2 or n % 2 or not 2 <= n <= n_det:
        # only for even sizes does the window centre N//2 land on the new centre n//2
        raise ConfigError(f"crop_px={n} must be an even size between 2 and the pattern size "
                          f"{n_det} (and the patterns must have an even size), e.g. "
                          f"{max(2, n_det // 4 * 2)}")
    return n
