"""Subpixel translation by a Fourier phase ramp (periodic, exact for band-limited fields)."""

from __future__ import annotations

import math

import torch

from pinn.ops._checks import check_coordinates, check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def fourier_shift(field: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``out[y, x] = field[y - dy, x - dx]`` on the periodic ``H x W`` grid, for any real shift.

    The field's spectrum is multiplied by ``exp(-2 pi i (ky dy / H + kx dx / W))`` (``ky``,
    ``kx`` the signed FFT frequencies), which moves it by exactly ``(dy, dx)`` pixels for
    integers (the same as ``torch.roll``) and interpolates band-limited for fractions. It is
    unitary and smooth in the shift, so gradients with respect to ``shift`` are exact and
    useful at every subpixel offset (bilinear weights have kinks at integers). The adjoint is
    the shift by ``-shift``. Content leaving one edge re-enters at the other: use it on fields
    that vanish near the window's edges (probes).

    Args:
        field: ``(..., H, W)`` complex (real is promoted), e.g. probe modes ``(K, N, N)``.
        shift: ``(..., 2)`` real ``(dy, dx)`` pixels; its leading dimensions broadcast against
            ``field``'s (e.g. ``(B, 1, 2)`` with ``(K, N, N)`` gives ``(B, K, N, N)``).

    Returns:
        ``(broadcast leading dims, H, W)`` complex64 (complex128 for double input).
    """
    check_tensor("field", field)
    check_tensor("shift", shift)
    check_min_dims("field", field, 2, "(..., H, W)")
    check_coordinates("shift", shift, "(..., 2)")
    with no_autocast(field.device):
        field = full_precision(field)
        if not field.is_complex():
            field = torch.complex(field, torch.zeros_like(field))
        real = field.real.dtype
        height, width = field.shape[-2:]
        shift = shift.to(real)
        ky = torch.fft.fftfreq(height, device=field.device, dtype=real)  # cycles per pixel
        kx = torch.fft.fftfreq(width, device=field.device, dtype=real)
        angle = (-2 * math.pi) * (shift[..., 0, None, None] * ky[:, None]
                                  + shift[..., 1, None, None] * kx[None, :])  # (..., H, W)
        ramp = torch.polar(torch.ones_like(angle), angle)
        return torch.fft.ifft2(torch.fft.fft2(field) * ramp)
