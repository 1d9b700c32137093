"""Far-field (Fraunhofer) diffraction amplitude."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def diffract(field: torch.Tensor) -> torch.Tensor:
    """Far-field amplitude of exit waves: ``sqrt(fftshift(|fft2(field)|**2) / (H*W))``.

    The division by ``H*W`` makes the transform energy preserving
    (``sum(out**2) == sum(|field|**2)``); zero frequency ends up at pixel ``(H//2, W//2)``.
    No shift is applied before the FFT (as in the TensorFlow reference).

    Args:
        field: ``(..., H, W)`` complex exit wave (real input is treated as complex).

    Returns:
        ``(..., H, W)`` float32 amplitude (float64 for complex128 input), also under autocast.
    """
    check_tensor("field", field)
    check_min_dims("field", field, 2, "(..., H, W)")
    with no_autocast(field.device):
        field = full_precision(field)
        if not field.is_complex():
            field = torch.complex(field, torch.zeros_like(field))
        height, width = field.shape[-2:]
        if field.numel() == 0:  # the CPU (MKL) FFT raises on an empty batch
            return torch.zeros(field.shape, dtype=field.real.dtype, device=field.device)
        spectrum = torch.fft.fft2(field)
        intensity = (spectrum.real.square() + spectrum.imag.square()) / (height * width)
        intensity = torch.fft.fftshift(intensity, dim=(-2, -1))
        # sqrt has an infinite derivative at 0, which times the zero derivative of the
        # intensity gives NaN (e.g. for every input pixel of a constant field); use the
        # subgradient 0 there instead. The forward value is unchanged.
        positive = intensity > 0
        safe = torch.where(positive, intensity, torch.ones_like(intensity))
        return torch.where(positive, safe.sqrt(), torch.zeros_like(intensity))
