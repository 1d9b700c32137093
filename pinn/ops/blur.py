"""Gaussian blur of images, renormalised at the border."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from pinn.ops._checks import check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast

#: The kernel stops at this many standard deviations (its tails beyond hold < 1e-4 of it).
TRUNCATE = 4.0


def _kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2r + 1,)`` normalised Gaussian taps, ``r = round(TRUNCATE * sigma)``."""
    radius = max(int(TRUNCATE * sigma + 0.5), 1)
    taps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (taps / sigma).square())
    return kernel / kernel.sum()


def _blur_last_axis(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded convolution of real ``(..., L)`` along its last axis with odd ``kernel``."""
    shape = x.shape
    rows = x.reshape(-1, 1, shape[-1])
    out = F.conv1d(rows, kernel.flip(0)[None, None], padding=kernel.shape[0] // 2)
    return out.reshape(shape)


def _blur_real(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded separable blur of real ``(..., H, W)``."""
    x = _blur_last_axis(x, kernel)
    return _blur_last_axis(x.transpose(-2, -1), kernel).transpose(-2, -1)


def gaussian_blur(image: torch.Tensor, sigma: float,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """Each pixel replaced by the Gaussian-weighted mean of the pixels around it.

    The weights are ``exp(-d**2 / (2 sigma**2))`` for a pixel at distance ``d`` (pixels),
    separable, cut at ``TRUNCATE * sigma``, times ``weights`` when given (a normalised
    convolution: ``blur(weights * image) / blur(weights)``; pixels of weight 0 count for
    nothing but still receive the mean of their weighted neighbours, and a pixel with no
    weighted neighbour within reach keeps its value). Pixels outside the image do not exist:
    near the border each mean is over the pixels inside only, so that a constant image stays
    constant and the border does not darken or wrap around. Complex images are blurred in
    their real and imaginary parts alike. In the Fourier domain of the interior (without
    ``weights``) this is a low-pass filter of gain ``exp(-2 pi**2 sigma**2 f**2)`` at ``f``
    cycles per pixel.

    Args:
        image: ``(..., H, W)`` real or complex.
        sigma: the standard deviation in pixels, >= 0 (0 returns ``image`` unchanged).
        weights: optional real ``(..., H, W)`` (broadcastable to ``image``), >= 0.

    Returns:
        ``(..., H, W)`` float32/complex64 (float64/complex128 for double input),
        differentiable in ``image``.
    """
    check_tensor("image", image)
    check_min_dims("image", image, 2, "(..., H, W)")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) \
            or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma is {sigma!r}; use a finite number of pixels >= 0")
    if weights is not None:
        check_tensor("weights", weights)
        if weights.is_complex() or weights.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"weights has shape {tuple(weights.shape)} and dtype "
                             f"{weights.dtype}; expected real (..., H, W) with (H, W) = "
                             f"{tuple(image.shape[-2:])}")
    if sigma == 0:
        return image
    with no_autocast(image.device):
        image = full_precision(image)
        real = image.real.dtype if image.is_complex() else image.dtype
        kernel = _kernel(float(sigma), real, image.device)
        if weights is None:
            # the share of each pixel's kernel that falls inside the image, per axis
            height, width = image.shape[-2:]
            rows = _blur_last_axis(torch.ones(height, dtype=real, device=image.device), kernel)
            cols = _blur_last_axis(torch.ones(width, dtype=real, device=image.device), kernel)
            return _blur(image, kernel) / (rows[:, None] * cols[None, :])
        weights = full_precision(weights).to(real)
        weights, image = torch.broadcast_tensors(weights, image)
        norm = _blur_real(weights, kernel)
        reached = norm > 1e-6 * norm.amax(dim=(-2, -1), keepdim=True)
        blurred = _blur(image * weights, kernel) / torch.where(reached, norm,
                                                                torch.ones_like(norm))
        return torch.where(reached, blurred, image)


def _blur(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded separable blur of real or complex ``(..., H, W)``."""
    if image.is_complex():
        return torch.complex(_blur_real(image.real, kernel), _blur_real(image.imag, kernel))
    return _blur_real(image, kernel)
