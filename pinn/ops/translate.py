"""Subpixel translation of images by bilinear interpolation."""

from __future__ import annotations

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_coordinates, check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def translate(image: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift image content by ``shift`` pixels: ``out[y, x] = image[y - dy, x - dx]``.

    Bilinear interpolation; each of the four taps that falls outside the image contributes
    zero (the TensorFlow reference's XLA translation, equal to ``grid_sample`` with
    ``padding_mode="zeros", align_corners=True``). Integer shifts are exact.

    Args:
        image: ``(..., H, W)`` real or complex.
        shift: ``(..., 2)`` real, ``(dy, dx)`` in pixels (positive moves content down/right).
            Its leading dimensions broadcast against the image's.

    Returns:
        ``(..., H, W)`` with the broadcast leading shape; float32/complex64 (float64/complex128
        for double input), also under autocast.

    Raises:
        TypeError, ValueError: on non-tensors, a shift without a last axis of 2, non-finite
            shifts or leading shapes that do not broadcast.
    """
    check_tensor("image", image)
    check_tensor("shift", shift)
    check_min_dims("image", image, 2, "(..., H, W)")
    check_coordinates("shift", shift, "(..., 2)")
    try:
        batch = torch.broadcast_shapes(image.shape[:-2], shift.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"image has shape {tuple(image.shape)} and shift {tuple(shift.shape)}; the leading "
            "dimensions of image (..., H, W) and shift (..., 2) must broadcast") from None
    with no_autocast(image.device):
        image = full_precision(image)
        height, width = image.shape[-2:]
        stack = image.expand(*batch, height, width).reshape(-1, height, width)  # (K, H, W)
        origin = -shift.expand(*batch, 2).reshape(-1, 2)  # (K, 2) top-left sample
        k = stack.shape[0]
        windows = _windows.make_windows(
            origin, torch.arange(k, device=image.device), (height, width), (height, width),
            image.real.dtype)
        out = _windows.gather(_windows.to_rows(stack), windows)  # (K, H, W, c)
        return _windows.from_rows(out, image.is_complex()).reshape(*batch, height, width)
