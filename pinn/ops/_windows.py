"""Bilinear windows: the gather and scatter shared by translate, extract and reassemble.

A *window* is an ``h x w`` grid of sample points on a canvas whose top-left sample sits at a
fractional canvas coordinate ``origin = (y, x)``. Sample ``(i, j)`` reads the canvas at
``origin + (i, j)`` by bilinear interpolation, and each of the four taps that falls outside
the canvas contributes zero.

All samples of one window share the same fractional part, so a window is an integer
``(h + 1) x (w + 1)`` block of canvas pixels combined with four scalar weights. Gathering reads
that block (one ``index_select``) and blends neighbouring rows and columns; scattering spreads
values onto the same block (one ``index_add_``). The two are exact transposes of each other,
and the cost is O(windows x h x w) whatever the canvas size.

Canvases are handled as *rows*: a real canvas stack ``(L, H, W)`` is the matrix
``(L*H*W, 1)`` and a complex one is its real view ``(L*H*W, 2)``, so one code path serves both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Windows:
    """Geometry of K windows of ``height x width`` samples on a stack of canvases.

    ``index``: (K, h+1, w+1) int64 row index into the flattened canvas stack (clamped into
    range; ``valid`` says which taps are real). ``fy``, ``fx``: (K, 1, 1, 1) fractional parts of
    the origin. ``height``, ``width``: the window size.
    """

    index: torch.Tensor
    valid: torch.Tensor
    fy: torch.Tensor
    fx: torch.Tensor
    height: int
    width: int


def make_windows(
    origin: torch.Tensor,
    canvas_index: torch.Tensor,
    size: tuple[int, int],
    canvas_shape: tuple[int, int],
    weight_dtype: torch.dtype,
) -> Windows:
    """Geometry for windows with top-left samples at ``origin``.

    origin: (K, 2) float, (y, x) canvas pixels. canvas_index: (K,) int64, which canvas of the
    stack each window lies on. size: (h, w). canvas_shape: (H, W). The fractional weights are
    computed in the origin's precision and returned as ``weight_dtype``.
    """
    height, width = size
    canvas_h, canvas_w = canvas_shape
    top = torch.floor(origin)
    frac = (origin - top).to(weight_dtype)  # (K, 2)
    top = top.to(torch.int64)
    device = origin.device
    rows = top[:, 0:1] + torch.arange(height + 1, device=device)  # (K, h+1)
    cols = top[:, 1:2] + torch.arange(width + 1, device=device)  # (K, w+1)
    row_ok = (rows >= 0) & (rows < canvas_h)
    col_ok = (cols >= 0) & (cols < canvas_w)
    rows = rows.clamp(0, canvas_h - 1)
    cols = cols.clamp(0, canvas_w - 1)
    base = canvas_index.to(torch.int64) * (canvas_h * canvas_w)  # (K,)
    index = base[:, None, None] + rows[:, :, None] * canvas_w + cols[:, None, :]  # (K, h+1, w+1)
    valid = row_ok[:, :, None] & col_ok[:, None, :]
    fy = frac[:, 0].reshape(-1, 1, 1, 1)
    fx = frac[:, 1].reshape(-1, 1, 1, 1)
    return Windows(index, valid, fy, fx, height, width)


def centred_windows(
    positions: torch.Tensor,
    n_canvas: int,
    size: tuple[int, int],
    canvas_shape: tuple[int, int],
    weight_dtype: torch.dtype,
) -> Windows:
    """Geometry for ``size`` windows whose centre sample ``(h//2, w//2)`` sits at ``positions``.

    positions: (..., P, 2) float, (y, x) canvas pixels; the k-th block of P windows lies on
    canvas k of a stack of ``n_canvas``.
    """
    height, width = size
    n_pos = positions.shape[-2]
    origin = positions.reshape(-1, 2) - torch.tensor(  # (n_canvas * P, 2): top-left samples
        [height // 2, width // 2], dtype=positions.dtype, device=positions.device)
    owner = torch.arange(n_canvas, device=positions.device).repeat_interleave(n_pos)
    return make_windows(origin, owner, size, canvas_shape, weight_dtype)


def to_rows(stack: torch.Tensor) -> torch.Tensor:
    """(L, H, W) real or complex -> (L*H*W, c) real with c = 1 (real) or 2 (complex)."""
    if stack.is_complex():
        return torch.view_as_real(stack.resolve_conj().contiguous()).reshape(-1, 2)
    return stack.reshape(-1, 1)


def from_rows(values: torch.Tensor, complex_out: bool) -> torch.Tensor:
    """(..., c) real -> (...) real (c = 1) or complex (c = 2); inverse of the last axis of to_rows."""
    if complex_out:
        return torch.view_as_complex(values.contiguous())
    return values.squeeze(-1)


def gather(rows: torch.Tensor, windows: Windows) -> torch.Tensor:
    """Sample the windows from a row matrix ``(L*H*W, c)``; returns ``(K, h, w, c)``."""
    k = windows.index.shape[0]
    c = rows.shape[-1]
    block = rows.index_select(0, windows.index.reshape(-1))
    block = block.reshape(k, windows.height + 1, windows.width + 1, c)
    block.masked_fill_(~windows.valid[..., None], 0)  # taps outside the canvas read 0
    # blend neighbouring rows, then columns: lerp(a, b, f) = (1 - f) a + f b in one pass
    rows_blended = torch.lerp(block[:, :-1], block[:, 1:], windows.fy)  # (K, h, w+1, c)
    return torch.lerp(rows_blended[:, :, :-1], rows_blended[:, :, 1:], windows.fx)


def scatter(values: torch.Tensor, windows: Windows, n_rows: int,
            into: torch.Tensor | None = None) -> torch.Tensor:
    """Add window values ``(K, h, w, c)`` onto a zero row matrix ``(n_rows, c)``, or in place
    onto ``into`` (a ``(n_rows, c)`` view of an existing canvas) when given.

    The exact transpose of :func:`gather`: ``<gather(r), v> == <r, scatter(v)>``.
    """
    fy, fx = windows.fy, windows.fx
    k, h, w, c = values.shape
    # Each value lands on the 2 x 2 pixels around it: accumulate the four shifted, weighted
    # copies into one (h+1, w+1) block per window in place (one fused pass each), then drop
    # the taps outside the canvas. Autograd handles the in-place views.
    spread = torch.zeros((k, h + 1, w + 1, c), dtype=values.dtype, device=values.device)
    gy, gx = 1 - fy, 1 - fx
    spread[:, :h, :w].addcmul_(values, gy * gx)
    spread[:, :h, 1:].addcmul_(values, gy * fx)
    spread[:, 1:, :w].addcmul_(values, fy * gx)
    spread[:, 1:, 1:].addcmul_(values, fy * fx)
    spread.masked_fill_(~windows.valid[..., None], 0)  # (not mul: inf * 0 is nan)
    if into is not None:
        return into.index_add_(0, windows.index.reshape(-1), spread.reshape(-1, c))
    out = torch.zeros(n_rows, c, dtype=values.dtype, device=values.device)
    return out.index_add(0, windows.index.reshape(-1), spread.reshape(-1, c))
