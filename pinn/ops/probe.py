"""Probes: the reference's default probe and its probe normalisation (of one probe or of the
modes of a mixed-state probe)."""

from __future__ import annotations

import math

import torch

from pinn.ops._checks import check_min_dims, check_size, check_tensor
from pinn.ops._precision import full_precision
from pinn.ops.disk_mask import disk_mask


def _gaussian_smooth(image: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of a 2-D float64 image, edges mirrored including the edge pixel
    (``scipy.ndimage.gaussian_filter`` with ``mode='reflect'``), repeatedly when the kernel is
    wider than the image."""
    radius = int(truncate * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    for axis in (0, 1):
        n = image.shape[axis]
        index = torch.arange(-radius, n + radius) % (2 * n)
        index = torch.where(index >= n, 2 * n - 1 - index, index)  # symmetric reflection
        padded = image.index_select(axis, index)
        image = sum(kernel[k] * padded.narrow(axis, k, n) for k in range(2 * radius + 1))
    return image


def default_probe(size: int) -> torch.Tensor:
    """The TensorFlow reference's default probe (``probe.get_default_probe``), unnormalised.

    A smoothed disk: the binary mask where the outer product of a Gaussian window
    (``std = size / (0.7 * pi**2)``, peak 1) exceeds 0.5, blurred with a Gaussian of sigma
    1 px (edges mirrored) plus 1e-9. Centred at ``((size-1)/2, (size-1)/2)``. For size 64 it
    has 376 pixels above 0.5 and maximum 1.

    Returns:
        ``(size, size)`` complex64 with zero imaginary part.
    """
    size = check_size("size", size)
    std = size / (0.7 * math.pi**2)
    coord = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-0.5 * (coord / std) ** 2)
    window = window / window.max()
    disk = (window[:, None] * window[None, :] > 0.5).to(torch.float64)
    amplitude = _gaussian_smooth(disk, sigma=1.0) + 1e-9
    return torch.complex(amplitude, torch.zeros_like(amplitude)).to(torch.complex64)


def normalize_probe(probe: torch.Tensor, scale: float = 4.0) -> torch.Tensor:
    """The reference's probe normalisation (``probe.set_probe``).

    ``probe / (scale * mean(|probe * disk_mask(N)|))``, the mean taken over all ``N*N`` pixels,
    so that afterwards ``mean(|probe * disk_mask|) == 1 / scale``. The reference's default
    ``scale`` (``probe_scale``) is 4.0 (10.0 in its legacy configuration).

    Args:
        probe: ``(..., N, N)`` complex (each trailing ``N x N`` probe is normalised on its own).
        scale: positive float.

    Returns:
        The normalised probe, same shape, complex64 (complex128 for double input).
    """
    check_tensor("probe", probe)
    check_min_dims("probe", probe, 2, "(..., N, N)")
    probe = _square_complex("probe", probe, "(..., N, N)", scale)
    mask = disk_mask(probe.shape[-1], device=probe.device).to(probe.real.dtype)
    mean_abs = (probe * mask).abs().mean(dim=(-2, -1), keepdim=True)
    if not torch.compiler.is_compiling() and bool((mean_abs == 0).any()):
        raise ValueError("probe is zero inside the central disk of radius N/4, so it cannot be "
                         "normalised; pass a probe that illuminates the centre of the window")
    return probe / (scale * mean_abs)


def normalize_probe_modes(modes: torch.Tensor, scale: float = 4.0) -> torch.Tensor:
    """:func:`normalize_probe` for a mixed-state probe: one common factor for all its modes.

    ``modes / (scale * mean(sqrt(sum_k |modes_k * disk_mask(N)|**2)))``: the root of the
    total intensity takes the place of ``|probe|``, so the modes keep their relative powers
    and afterwards ``mean(sqrt(sum_k |modes_k * disk_mask|**2)) == 1 / scale``. For ``K = 1``
    it is ``normalize_probe(modes[..., 0, :, :], scale)`` bit for bit (with the mode axis).

    Args:
        modes: ``(..., K, N, N)`` complex (each leading index is one probe of K modes).
        scale: positive float.

    Returns:
        Same shape, complex64 (complex128 for double input).

    Raises:
        ValueError: as :func:`normalize_probe` (also for an empty mode axis).
    """
    check_tensor("modes", modes)
    check_min_dims("modes", modes, 3, "(..., K, N, N)")
    if modes.shape[-3] == 1:
        return normalize_probe(modes[..., 0, :, :], scale).unsqueeze(-3)
    if modes.shape[-3] == 0:
        raise ValueError(f"modes has shape {tuple(modes.shape)}; expected K >= 1 modes")
    modes = _square_complex("modes", modes, "(..., K, N, N)", scale)
    total = (modes.real.square() + modes.imag.square()).sum(dim=-3).sqrt()  # (..., N, N)
    mask = disk_mask(modes.shape[-1], device=modes.device).to(total.dtype)
    mean_abs = (total * mask).mean(dim=(-2, -1), keepdim=True)  # (..., 1, 1)
    if not torch.compiler.is_compiling() and bool((mean_abs == 0).any()):
        raise ValueError("the probe modes are zero inside the central disk of radius N/4, so "
                         "they cannot be normalised; pass modes that illuminate the centre of "
                         "the window")
    return modes / (scale * mean_abs.unsqueeze(-3))


def _square_complex(name: str, x: torch.Tensor, layout: str, scale: float) -> torch.Tensor:
    """The checks the normalisations share (a positive scale, square ``N x N`` planes), and
    ``x`` as a full-precision complex tensor."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected a square {layout}")
    x = full_precision(x)
    return x if x.is_complex() else torch.complex(x, torch.zeros_like(x))
