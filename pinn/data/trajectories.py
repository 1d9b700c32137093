"""Scan trajectories for simulation: jittered raster, Fermat spiral, uniform random.

Every generator returns ``(n_scans, 2)`` float64 ``(y, x)`` object pixels of each window's
centre pixel ``N//2``, and keeps the whole ``N x N`` window inside the object, including the
bilinear taps of subpixel positions: ``N//2 <= p <= H - N + N//2`` per axis
(:func:`scan_bounds`). Each raises :class:`~pinn.errors.ConfigError` for a non-positive
``n_scans`` or ``size`` and for an object smaller than the window.
"""

from __future__ import annotations

import math

import torch

from pinn.data._checks import positive_int
from pinn.data.objects import generator_from
from pinn.errors import ConfigError

KINDS = ("random", "raster", "spiral")


def scan_bounds(object_shape: tuple[int, int], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest window-centre positions keeping a ``size`` window inside the object.

    Args:
        object_shape: ``(H, W)`` pixels.
        size: window side N.

    Returns:
        ``(low, high)``, each ``(2,)`` float64 ``(y, x)``: ``N//2`` and ``(H, W) - N + N//2``.

    Raises:
        ConfigError: the object is smaller than the window.
    """
    size = positive_int("size", size)
    height, width = (positive_int("object_shape", v) for v in object_shape)
    if height < size or width < size:
        raise ConfigError(f"object_shape {(height, width)} is smaller than the {size} x {size} "
                          "window; use an object at least as large as the probe")
    low = torch.tensor([size // 2, size // 2], dtype=torch.float64)
    high = torch.tensor([height - size + size // 2, width - size + size // 2], dtype=torch.float64)
    return low, high


def make_positions(kind: str, object_shape: tuple[int, int], size: int, n_scans: int, *,
                   seed: int | torch.Generator = 0, jitter_px: float = 0.0) -> torch.Tensor:
    """``n_scans`` positions of the given ``kind``: ``'raster'`` (:func:`raster_positions`,
    with ``jitter_px``), ``'spiral'`` (:func:`spiral_positions`) or ``'random'``
    (:func:`random_positions`). Randomness (raster jitter, random) comes from ``seed``.

    Returns:
        ``(n_scans, 2)`` float64 ``(y, x)`` window centres in object pixels.

    Raises:
        ConfigError: unknown kind, bad sizes, or an object smaller than the window.
    """
    if kind == "raster":
        return raster_positions(object_shape, size, n_scans, jitter_px=jitter_px, seed=seed)
    if kind == "spiral":
        return spiral_positions(object_shape, size, n_scans)
    if kind == "random":
        return random_positions(object_shape, size, n_scans, seed=seed)
    raise ConfigError(f"scan kind {kind!r} is not one of {KINDS}")


def raster_positions(object_shape: tuple[int, int], size: int, n_scans: int, *,
                     jitter_px: float = 0.0, seed: int | torch.Generator = 0) -> torch.Tensor:
    """A row-major raster of ``n_scans`` points spanning the allowed region, optionally jittered.

    The grid has ``cols = max(1, round(sqrt(n_scans * width / height)))`` columns and
    ``rows = ceil(n_scans / cols)`` rows evenly spaced from the lowest to the highest allowed
    position (the centre when there is one row or column); the first ``n_scans`` grid points
    in row-major order are kept, so the last row may be partial. Gaussian jitter of standard
    deviation ``jitter_px`` is then added and clipped to the allowed region.
    """
    n, low, high = _region(object_shape, size, n_scans)
    span = (high - low).clamp_min(1.0)
    cols = max(1, round(math.sqrt(n * float(span[1] / span[0]))))
    rows = math.ceil(n / cols)
    ys = _even(float(low[0]), float(high[0]), rows)
    xs = _even(float(low[1]), float(high[1]), cols)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)[:n]
    if jitter_px:
        if not (jitter_px > 0 and math.isfinite(jitter_px)):
            raise ConfigError(f"jitter_px must be finite and >= 0, got {jitter_px!r}")
        noise = torch.randn(n, 2, generator=generator_from(seed), dtype=torch.float64)
        grid = torch.minimum(torch.maximum(grid + float(jitter_px) * noise, low), high)
    return grid


def spiral_positions(object_shape: tuple[int, int], size: int, n_scans: int) -> torch.Tensor:
    """A Fermat spiral of ``n_scans`` points (deterministic) filling the allowed region.

    Point k sits at radius ``sqrt((k + 0.5) / n_scans)`` (as a fraction of the half-extent in
    each axis) and angle ``k * pi * (3 - sqrt(5))`` (the golden angle) around the centre of
    the allowed region, which gives an even density without a raster's periodicity.
    """
    n, low, high = _region(object_shape, size, n_scans)
    k = torch.arange(n, dtype=torch.float64)
    radius = torch.sqrt((k + 0.5) / n)
    angle = k * math.pi * (3 - math.sqrt(5))
    centre, half = (low + high) / 2, (high - low) / 2
    return torch.stack([centre[0] + half[0] * radius * torch.sin(angle),
                        centre[1] + half[1] * radius * torch.cos(angle)], dim=1)


def random_positions(object_shape: tuple[int, int], size: int, n_scans: int, *,
                     seed: int | torch.Generator = 0) -> torch.Tensor:
    """``n_scans`` positions uniform over the allowed region (like the reference's
    coordinate-based simulator, but with the full window inside the object).
    """
    n, low, high = _region(object_shape, size, n_scans)
    uniform = torch.rand(n, 2, generator=generator_from(seed), dtype=torch.float64)
    return low + uniform * (high - low)


def _region(object_shape: tuple[int, int], size: int, n_scans: int
            ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """The checked point count and the allowed window-centre range (:func:`scan_bounds`)."""
    return (positive_int("n_scans", n_scans), *scan_bounds(object_shape, size))


def _even(low: float, high: float, count: int) -> torch.Tensor:
    if count == 1:
        return torch.tensor([(low + high) / 2], dtype=torch.float64)
    return torch.linspace(low, high, count, dtype=torch.float64)
