"""Reassembly of patches onto a canvas at subpixel positions (scatter-add)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_out, check_patches_at, check_shape_pair
from pinn.ops._precision import full_precision, no_autocast


def reassemble_patches(
    patches: torch.Tensor, positions: torch.Tensor, canvas_shape: Sequence[int],
    *, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add patches onto zero canvases, each centred at its position: the adjoint of extraction.

    Every patch pixel is split over the four canvas pixels around its (fractional) location
    with the bilinear weights of :func:`pinn.ops.extract_patches`, so that
    ``<extract_patches(c, p, n), v> == <c, reassemble_patches(v, p, c.shape[-2:])>``.
    Contributions that fall outside the canvas are dropped; nothing is normalised (see
    :func:`pinn.ops.stitch`). Cost O(B * P * n * m) whatever the canvas size: one
    ``index_add_`` over flat indices, deterministic on CPU.

    Args:
        patches: ``(..., P, n, m)`` real or complex; centre pixel ``(n//2, m//2)``.
        positions: ``(..., P, 2)`` real, ``(y, x)`` canvas pixels of each patch's centre.
        canvas_shape: ``(H, W)``.
        out: optional contiguous ``(..., H, W)`` canvas of the patches' working dtype to add
            into in place instead of a zero canvas (streaming: the cost then stays
            O(B * P * n * m) per call, with no canvas-sized allocation). Not differentiable.

    Returns:
        ``(..., H, W)`` float32/complex64 (double for double input); ``out`` when given.
    """
    check_patches_at(patches, positions)
    height, width = check_shape_pair("canvas_shape", canvas_shape)
    with no_autocast(patches.device):
        patches = full_precision(patches)
        lead = patches.shape[:-3]
        n, m = patches.shape[-2:]
        stack = patches.reshape(-1, n, m)  # (L*P, n, m)
        n_canvas = math.prod(lead)
        windows = _windows.centred_windows(positions, n_canvas, (n, m), (height, width),
                                           patches.real.dtype)
        values = _windows.to_rows(stack).reshape(  # (L*P, n, m, c); c explicit for L*P == 0
            stack.shape[0], n, m, 2 if stack.is_complex() else 1)
        if out is not None:
            check_out("out", out, (*lead, height, width), patches.dtype)
            _windows.scatter(values, windows, n_canvas * height * width,
                             into=_windows.to_rows(out))
            return out
        rows = _windows.scatter(values, windows, n_canvas * height * width)
        return _windows.from_rows(rows, patches.is_complex()).reshape(*lead, height, width)

