"""Raw detector counts -> pinn's diffraction amplitude, with bad-pixel handling.

Ptychodus hands a reconstructor the assembled patterns as stored: detector counts
``(M, H, W)`` of any integer or float dtype, zero frequency at the centre pixel (as pinn wants
it), and one ``(H, W)`` bool mask of bad pixels shared by all patterns. pinn trains on
``sqrt(counts)`` and its loss has no mask, so bad pixels are given a value first:

- ``"neighbors"`` (default): each bad pixel takes the mean of its valid 3 x 3 neighbours,
  repeated so that clusters fill from their edges inwards (a pixel with no valid pixel
  anywhere near gets 0). This keeps the Poisson likelihood from treating a dead pixel as a
  measured zero.
- ``"zero"``: bad pixels are set to 0 (what most solvers that ignore masks do).

Negative counts (background-subtracted detectors) are clipped to 0. NaN or infinite counts
outside the mask are refused.
"""

from __future__ import annotations

import numpy as np
import torch

from pinn.data.scan import sqrt_counts
from pinn.errors import ConfigError, DataError

__all__ = ["BAD_PIXEL_FILLS", "counts_to_amplitude"]

BAD_PIXEL_FILLS = ("neighbors", "zero")
_CHUNK = 256  # patterns per float64 block


def counts_to_amplitude(counts: np.ndarray, bad_pixels: np.ndarray | None = None, *,
                        fill: str = "neighbors") -> torch.Tensor:
    """Diffraction amplitude ``sqrt(counts)`` with bad pixels filled.

    Args:
        counts: ``(M, N, N)`` real (any int or float dtype), detector counts with zero
            frequency at pixel ``(N//2, N//2)``.
        bad_pixels: ``(N, N)`` bool, True where the detector pixel is bad; None: none are.
        fill: ``"neighbors"`` or ``"zero"`` (see the module docstring).

    Returns:
        ``(M, N, N)`` float32 amplitude, finite and >= 0.

    Raises:
        DataError: wrong rank or shape, non-square patterns, complex or non-numeric values,
            a mask of another shape or dtype, or NaN/inf outside the mask.
        ConfigError: an unknown ``fill``.
    """
    if fill not in BAD_PIXEL_FILLS:
        raise ConfigError(f"bad-pixel fill is {fill!r}; use one of {BAD_PIXEL_FILLS}")
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] == 0 or counts.shape[1] != counts.shape[2] \
            or counts.shape[1] == 0:
        raise DataError(f"diffraction patterns have shape {counts.shape}; expected (M, N, N): "
                        "M >= 1 square patterns (crop the detector to a square in Ptychodus)")
    if np.iscomplexobj(counts) or not (np.issubdtype(counts.dtype, np.number)
                                       or counts.dtype == bool):
        raise DataError(f"diffraction patterns have dtype {counts.dtype}; expected real counts")
    mask = np.zeros(counts.shape[1:], dtype=bool) if bad_pixels is None \
        else np.asarray(bad_pixels)
    if mask.shape != counts.shape[1:] or mask.dtype != bool:
        raise DataError(f"the bad-pixel mask has shape {mask.shape} dtype {mask.dtype}; "
                        f"expected bool {counts.shape[1:]}, the pattern shape")
    out = torch.empty(counts.shape, dtype=torch.float32)
    for start in range(0, counts.shape[0], _CHUNK):
        block = counts[start:start + _CHUNK].astype(np.float64)  # (B, N, N)
        finite = np.isfinite(block) | mask
        if not finite.all():
            index = start + int(np.argwhere(~finite)[0][0])
            raise DataError(f"pattern {index} holds NaN or infinite counts at pixels that are "
                            "not marked bad; mark them in the bad-pixel mask")
        block = np.clip(np.where(mask, 0.0, block), 0.0, None)
        if fill == "neighbors" and mask.any():
            block = _fill_from_neighbors(block, mask)
        out[start:start + _CHUNK] = sqrt_counts(torch.from_numpy(block))
    return out


def _fill_from_neighbors(block: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace masked pixels of ``(B, N, N)`` by the mean of their known 3 x 3 neighbours,
    layer by layer inwards; pixels never reached stay 0."""
    known = ~mask  # (N, N)
    while True:
        missing = ~known
        if not missing.any():
            return block
        values = _box_sum(np.where(known, block, 0.0))  # (B, N, N)
        weights = _box_sum(known[None].astype(np.float64))[0]  # (N, N)
        reached = missing & (weights > 0)
        if not reached.any():
            return block
        block = np.where(reached, values / np.maximum(weights, 1.0), block)
        known = known | reached


def _box_sum(image: np.ndarray) -> np.ndarray:
    """Sum over each pixel's 3 x 3 neighbourhood (zero outside), ``(B, N, N)`` -> same."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)))
    n, m = image.shape[-2:]
    return sum(padded[:, dy:dy + n, dx:dx + m] for dy in range(3) for dx in range(3))
