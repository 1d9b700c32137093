"""Stitching: reassembly normalised by coverage."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_coordinates, check_min_dims, check_shape_pair, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def stitch(
    patches: torch.Tensor,
    positions: torch.Tensor,
    canvas_shape: Sequence[int],
    eps: float = 1e-9,
    window: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average overlapping patches on a canvas: ``reassemble(patches) / (coverage + eps)``.

    ``coverage = reassemble_patches(window)`` counts, per canvas pixel, how much patch weight
    landed there (``window`` defaults to ones: every patch pixel counts). Both sums come from
    one scatter pass. Pixels no patch reaches are 0 in both outputs.

    Args:
        patches: ``(..., P, n, m)`` real or complex.
        positions: ``(..., P, 2)`` real, ``(y, x)`` canvas pixels of each patch's centre pixel
            ``(n//2, m//2)``.
        canvas_shape: ``(H, W)``.
        eps: added to the coverage before dividing (the TensorFlow reference uses 1e-9 when
            stitching a scan and 0.001 inside the model).
        window: optional ``(n, m)`` real weights of each patch pixel in the coverage (the
            model counts only the window its decoder fills). The numerator is not weighted.

    Returns:
        ``(image, coverage)``: ``(..., H, W)`` with the patches' dtype, and ``(..., H, W)`` real.
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
    n, m = patches.shape[-2:]
    if window is not None and tuple(check_tensor("window", window).shape) != (n, m):
        raise ValueError(f"window has shape {tuple(window.shape)}; expected the patch shape {(n, m)}")
    with no_autocast(patches.device):
        patches = full_precision(patches)
        real_dtype = patches.real.dtype
        lead = patches.shape[:-3]
        n_pos = patches.shape[-3]
        n_canvas = math.prod(lead)
        stack = patches.reshape(-1, n, m)  # (K, n, m)
        k = stack.shape[0]
        weights = (torch.ones((n, m), dtype=real_dtype, device=patches.device) if window is None
                   else window.to(device=patches.device, dtype=real_dtype))
        values = torch.cat(  # (K, n, m, c + 1): the patch channels, then the coverage weight
            [_windows.to_rows(stack).reshape(k, n, m, 2 if stack.is_complex() else 1),
             weights.expand(k, n, m)[..., None]],
            dim=-1)
        origin = positions.reshape(-1, 2) - torch.tensor(
            [n // 2, m // 2], dtype=positions.dtype, device=positions.device)
        owner = torch.arange(n_canvas, device=patches.device).repeat_interleave(n_pos)
        windows = _windows.make_windows(origin, owner, (n, m), (height, width), real_dtype)
        rows = _windows.scatter(values, windows, n_canvas * height * width)  # (L*H*W, c + 1)
        coverage = rows[:, -1:]
        image = _windows.from_rows(rows[:, :-1] / (coverage + eps), patches.is_complex())
        return image.reshape(*lead, height, width), coverage.reshape(*lead, height, width)
