"""Reassembly of patches onto a canvas at subpixel positions (scatter-add)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_coordinates, check_min_dims, check_shape_pair, check_tensor
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
    check_tensor("patches", patches)
    check_tensor("positions", positions)
    check_min_dims("patches", patches, 3, "(..., P, n, m)")
    check_coordinates("positions", positions, "(..., P, 2)")
    if positions.shape[:-1] != patches.shape[:-2]:
        raise ValueError(
            f"positions has shape {tuple(positions.shape)} and patches {tuple(patches.shape)}; "
            "expected positions (..., P, 2) for patches (..., P, n, m)")
    height, width = check_shape_pair("canvas_shape", canvas_shape)
    with no_autocast(patches.device):
        patches = full_precision(patches)
        lead = patches.shape[:-3]
        n_pos, n, m = patches.shape[-3:]
        stack = patches.reshape(-1, n, m)  # (L*P, n, m)
        n_canvas = math.prod(lead)
        origin = positions.reshape(-1, 2) - torch.tensor(
            [n // 2, m // 2], dtype=positions.dtype, device=positions.device)
        owner = torch.arange(n_canvas, device=patches.device).repeat_interleave(n_pos)
        windows = _windows.make_windows(origin, owner, (n, m), (height, width),
                                        patches.real.dtype)
        values = _windows.to_rows(stack).reshape(  # (L*P, n, m, c); c explicit for L*P == 0
            stack.shape[0], n, m, 2 if stack.is_complex() else 1)
        if out is not None:
            _check_out(out, (*lead, height, width), patches.dtype)
            _windows.scatter(values, windows, n_canvas * height * width,
                             into=_windows.to_rows(out))
            return out
        rows = _windows.scatter(values, windows, n_canvas * height * width)
        return _windows.from_rows(rows, patches.is_complex()).reshape(*lead, height, width)


def _check_out(out: object, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    check_tensor("out", out)
    if tuple(out.shape) != shape or out.dtype != dtype or not out.is_contiguous():
        raise ValueError(f"out is a {tuple(out.shape)} {out.dtype} tensor; expected a "
                         f"contiguous {shape} {dtype} canvas")
    if out.requires_grad:
        raise ValueError("out requires grad; accumulating in place is not differentiable")
