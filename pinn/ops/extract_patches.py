"""Extraction of patches from a canvas at subpixel positions (gather)."""

from __future__ import annotations

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_coordinates, check_min_dims, check_size, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def extract_patches(canvas: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """Cut ``size x size`` patches centred at ``positions`` out of each canvas.

    Patch pixel ``(i, j)`` is the canvas sampled at ``positions - size//2 + (i, j)``: the
    patch's centre pixel ``(size//2, size//2)`` lands on the position. Bilinear, zero outside
    the canvas. Cost O(B * P * size**2), independent of the canvas size. The exact adjoint is
    :func:`pinn.ops.reassemble_patches`.

    Args:
        canvas: ``(..., H, W)`` real or complex (e.g. ``(B, H, W)``).
        positions: ``(..., P, 2)`` real, ``(y, x)`` canvas pixels; the leading dimensions match
            the canvas's.
        size: patch side in pixels.

    Returns:
        ``(..., P, size, size)``, float32/complex64 (double for double input).
    """
    check_tensor("canvas", canvas)
    check_tensor("positions", positions)
    check_min_dims("canvas", canvas, 2, "(..., H, W)")
    check_coordinates("positions", positions, "(..., P, 2)")
    if positions.dim() < 2 or positions.shape[:-2] != canvas.shape[:-2]:
        raise ValueError(
            f"positions has shape {tuple(positions.shape)} and canvas {tuple(canvas.shape)}; "
            "expected positions (..., P, 2) with the same leading dimensions as canvas (..., H, W)")
    size = check_size("size", size)
    with no_autocast(canvas.device):
        canvas = full_precision(canvas)
        lead = canvas.shape[:-2]
        height, width = canvas.shape[-2:]
        n_pos = positions.shape[-2]
        stack = canvas.reshape(-1, height, width)  # (L, H, W)
        windows = _windows.centred_windows(positions, stack.shape[0], (size, size),
                                           (height, width), canvas.real.dtype)
        out = _windows.gather(_windows.to_rows(stack), windows)  # (L*P, size, size, c)
        return _windows.from_rows(out, canvas.is_complex()).reshape(*lead, n_pos, size, size)
