"""Synthetic probes for simulation: the reference's default, a Gaussian, a defocused ring.

Each probe is an ``(N, N)`` complex64 array with peak amplitude about 1. Their absolute scale
does not matter to the simulator, which doses the patterns to a requested photon count.
"""

from __future__ import annotations

import math

import torch

from pinn.data._checks import positive_int
from pinn.data.objects import gaussian_filter
from pinn.errors import ConfigError
from pinn.ops import default_probe

KINDS = ("default", "gaussian", "ring")


def make_probe(kind: str, size: int) -> torch.Tensor:
    """An ``(size, size)`` complex64 probe: ``'default'`` (:func:`pinn.ops.default_probe`, the
    reference's smoothed disk, centred at ``((size-1)/2, (size-1)/2)``), ``'gaussian'``
    (:func:`gaussian_probe`) or ``'ring'`` (:func:`ring_probe`) with default parameters.

    Raises:
        ConfigError: unknown ``kind`` or a bad ``size``.
    """
    size = positive_int("size", size)
    if kind == "default":
        return default_probe(size)
    if kind == "gaussian":
        return gaussian_probe(size)
    if kind == "ring":
        return ring_probe(size)
    raise ConfigError(f"probe kind {kind!r} is not one of {KINDS}")


def gaussian_probe(size: int, sigma_px: float | None = None) -> torch.Tensor:
    """A flat-phase Gaussian spot ``exp(-r**2 / (2 sigma**2))``, peak 1 at ``(size//2, size//2)``.

    Args:
        size: side in pixels.
        sigma_px: standard deviation in pixels (default ``size / 8``).

    Returns:
        ``(size, size)`` complex64 with zero imaginary part.

    Raises:
        ConfigError: ``size`` or ``sigma_px`` not positive.
    """
    size = positive_int("size", size)
    sigma = size / 8 if sigma_px is None else float(sigma_px)
    if not sigma > 0:
        raise ConfigError(f"sigma_px must be > 0, got {sigma_px!r}")
    r2 = _radius(size) ** 2
    amplitude = torch.exp(-r2 / (2 * sigma * sigma))
    return torch.complex(amplitude, torch.zeros_like(amplitude)).to(torch.complex64)


def hermite_gauss_modes(size: int, powers: tuple[float, ...], sigma_px: float | None = None
                        ) -> torch.Tensor:
    """Orthogonal Hermite-Gauss modes (00, 10, 01, 11: ``g``, ``g x``, ``g y``, ``g x y`` with
    ``g = exp(-(x**2 + y**2) / 2)`` in units of ``sigma_px``, centred at ``(size//2, size//2)``)
    whose powers (summed ``|mode|**2``) are ``powers``: a mixed-state probe for simulation.

    Args:
        size: side in pixels.
        powers: one to four powers, e.g. ``(0.8, 0.15, 0.05)`` (unit total power) or counts.
        sigma_px: the Gaussian's standard deviation in pixels (default ``size / 8``).

    Returns:
        ``(K, size, size)`` complex64, ``K = len(powers)``, real-valued.

    Raises:
        ConfigError: a bad ``size`` or ``sigma_px``, or not 1-4 powers.
    """
    size = positive_int("size", size)
    sigma = size / 8 if sigma_px is None else float(sigma_px)
    if not sigma > 0:
        raise ConfigError(f"sigma_px must be > 0, got {sigma_px!r}")
    if not 1 <= len(powers) <= 4:
        raise ConfigError(f"hermite_gauss_modes makes 1 to 4 modes; got {len(powers)} powers")
    steps = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(steps / sigma, steps / sigma, indexing="ij")
    g = torch.exp(-(y**2 + x**2) / 2)
    shapes = [g, g * x, g * y, g * x * y][:len(powers)]
    return torch.stack([(shape / shape.square().sum().sqrt() * math.sqrt(p)).to(torch.complex64)
                        for shape, p in zip(shapes, powers)])


def ring_probe(size: int, *, outer_radius_px: float | None = None,
               inner_radius_px: float | None = None, edge_phase_rad: float = 4 * math.pi,
               ) -> torch.Tensor:
    """A defocused zone-plate-like probe: an annulus with a quadratic (defocus) phase.

    Out of focus, a zone plate with a central stop illuminates a ring. The amplitude is 1 for
    ``inner <= r <= outer`` (``r`` from pixel ``(size//2, size//2)``), 0 elsewhere, smoothed
    with a sigma 1 px Gaussian; the phase is ``edge_phase_rad * (r / outer)**2``, a spherical
    wavefront whose phase at the outer edge is ``edge_phase_rad``.

    Args:
        size: side in pixels.
        outer_radius_px: default ``0.3 * size``.
        inner_radius_px: default half the outer radius.
        edge_phase_rad: defocus phase at the outer radius.

    Returns:
        ``(size, size)`` complex64, amplitude in ``[0, 1]``.

    Raises:
        ConfigError: radii not ``0 <= inner < outer``.
    """
    size = positive_int("size", size)
    outer = 0.3 * size if outer_radius_px is None else float(outer_radius_px)
    inner = outer / 2 if inner_radius_px is None else float(inner_radius_px)
    if not 0 <= inner < outer:
        raise ConfigError(f"ring radii must satisfy 0 <= inner < outer, got inner={inner}, "
                          f"outer={outer}")
    r = _radius(size)
    annulus = ((r >= inner) & (r <= outer)).to(torch.float64)
    amplitude = gaussian_filter(annulus, 1.0)
    phase = float(edge_phase_rad) * (r / outer) ** 2
    return torch.polar(amplitude, phase).to(torch.complex64)


def _radius(size: int) -> torch.Tensor:
    coord = torch.arange(size, dtype=torch.float64) - size // 2
    return torch.sqrt(coord[:, None] ** 2 + coord[None, :] ** 2)

