"""Stitching: patches reassembled onto a canvas and normalised by how much of them landed there.

One formula serves every caller: ``image = sum_k w_k patch_k / (sum_k w_k window + eps)``, the
sums taken with :func:`pinn.ops.reassemble_patches`'s bilinear scatter. The in-model merge of a
group's patches calls :func:`stitch` with the decoder's ``window``; inference over a whole scan
(:func:`pinn.reconstruct.reconstruct`) adds batch after batch into the two canvases with
:func:`stitch_sums` (``weights``: each group's illumination) and divides once at the end with
:func:`normalize_stitch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pinn.ops import _windows
from pinn.ops._checks import check_out, check_patches_at, check_shape_pair, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def stitch(
    patches: torch.Tensor,
    positions: torch.Tensor,
    canvas_shape: Sequence[int],
    eps: float = 1e-9,
    window: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average overlapping patches on a canvas: ``sums / (coverage + eps)`` (:func:`stitch_sums`).

    Pixels no patch reaches are 0 in both outputs.

    Args:
        patches: ``(..., P, n, m)`` real or complex.
        positions: ``(..., P, 2)`` real, ``(y, x)`` canvas pixels of each patch's centre pixel
            ``(n//2, m//2)``.
        canvas_shape: ``(H, W)``.
        eps: added to the coverage before dividing (the TensorFlow reference uses 1e-9 when
            stitching a scan and 0.001 inside the model).
        window: optional ``(n, m)`` real weights of each patch pixel in the coverage only (the
            model counts only the window its decoder fills).
        weights: optional ``(..., P, n, m)`` real weights of each patch pixel in both sums.

    Returns:
        ``(image, coverage)``: ``(..., H, W)`` with the patches' dtype, and ``(..., H, W)`` real.
    """
    sums, coverage = stitch_sums(patches, positions, canvas_shape, window, weights=weights)
    return normalize_stitch(sums, coverage, eps), coverage


def stitch_sums(
    patches: torch.Tensor,
    positions: torch.Tensor,
    canvas_shape: Sequence[int],
    window: torch.Tensor | None = None,
    *,
    weights: torch.Tensor | None = None,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two canvases a stitch divides: ``sums = reassemble(weights * patches)`` and
    ``coverage = reassemble(weights * window)`` (each weight defaults to ones), from one
    scatter pass (two when adding into ``out``).

    Args:
        patches, positions, canvas_shape, window, weights: as for :func:`stitch`.
        out: optional ``(sums, coverage)`` contiguous ``(..., H, W)`` canvases (the patches'
            working dtype, and its real dtype) to add into in place, for streaming batch after
            batch with no canvas-sized allocation per call. Not differentiable.

    Returns:
        ``(sums, coverage)``: ``(..., H, W)`` with the patches' dtype and its real dtype;
        ``out`` when given.
    """
    check_patches_at(patches, positions)
    height, width = check_shape_pair("canvas_shape", canvas_shape)
    n, m = patches.shape[-2:]
    if window is not None and tuple(check_tensor("window", window).shape) != (n, m):
        raise ValueError(f"window has shape {tuple(window.shape)}; expected the patch shape {(n, m)}")
    if weights is not None and check_tensor("weights", weights).shape != patches.shape:
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected the patches' "
                         f"shape {tuple(patches.shape)}")
    if weights is not None and weights.is_complex():
        raise TypeError(f"weights must be real, got {weights.dtype}")
    with no_autocast(patches.device):
        patches = full_precision(patches)
        real_dtype = patches.real.dtype
        lead = patches.shape[:-3]
        n_canvas = math.prod(lead)
        stack = patches.reshape(-1, n, m)  # (K, n, m)
        k = stack.shape[0]
        cover = (torch.ones((n, m), dtype=real_dtype, device=patches.device) if window is None
                 else window.to(device=patches.device, dtype=real_dtype)).expand(k, n, m)
        if weights is not None:
            pixel_weights = weights.reshape(-1, n, m).to(real_dtype)  # (K, n, m)
            stack = stack * pixel_weights
            cover = pixel_weights if window is None else cover * pixel_weights
        values = _windows.to_rows(stack).reshape(k, n, m, 2 if stack.is_complex() else 1)
        windows = _windows.centred_windows(positions, n_canvas, (n, m), (height, width),
                                           real_dtype)
        n_rows = n_canvas * height * width
        if out is not None:
            sums, coverage = out
            check_out("out[0]", sums, (*lead, height, width), patches.dtype)
            check_out("out[1]", coverage, (*lead, height, width), real_dtype)
            _windows.scatter(values, windows, n_rows, into=_windows.to_rows(sums))
            _windows.scatter(cover[..., None], windows, n_rows, into=coverage.view(-1, 1))
            return sums, coverage
        # the patch channels and the coverage weight side by side: one scatter for both
        rows = _windows.scatter(torch.cat([values, cover[..., None]], dim=-1), windows, n_rows)
        sums = _windows.from_rows(rows[:, :-1], patches.is_complex())
        return sums.reshape(*lead, height, width), rows[:, -1].reshape(*lead, height, width)


def normalize_stitch(sums: torch.Tensor, coverage: torch.Tensor, eps: float) -> torch.Tensor:
    """``sums / (coverage + eps)``; a complex ``sums`` has its real and imaginary parts divided
    by the real denominator (not a complex division, which rounds differently).

    Args:
        sums: ``(..., H, W)`` real or complex, from :func:`stitch_sums`.
        coverage: ``(..., H, W)`` real.
        eps: added to the coverage (absolute; scale it by ``coverage.max()`` for a relative
            floor).
    """
    denominator = coverage + eps
    if sums.is_complex():
        return torch.view_as_complex(torch.view_as_real(sums) / denominator[..., None])
    return sums / denominator

