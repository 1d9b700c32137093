"""Scan positions between Ptychodus (metres) and pinn (object pixels), both ways.

Ptychodus gives each scan point in metres, ``(x_m, y_m)``. Its object array of ``H x W``
pixels of ``pixel_width_m x pixel_height_m`` has its centre ``(center_x_m, center_y_m)`` on the
(possibly fractional) pixel ``((W - 1) / 2, (H - 1) / 2)``, so a point lies on the object pixel

    x_px = (x_m - center_x_m) / pixel_width_m + (W - 1) / 2,   likewise y_px,

and Ptychodus puts the probe's own centre, its pixel ``(N - 1) / 2``, on that object pixel.
pinn instead puts the probe's pixel ``N // 2`` on the position (``pinn.data.ScanData``). For odd
``N`` both are the same pixel; for even ``N`` pinn's centre pixel lies half a pixel further
along each axis, so

    pinn position = Ptychodus object pixel + (N // 2 - (N - 1) / 2)   (+0.5 for even N).

Both functions are plain float64 numpy and need no Ptychodus install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pinn.errors import DataError

__all__ = ["ObjectFrame", "positions_from_pinn", "positions_to_pinn", "window_offset_px"]


@dataclass(frozen=True)
class ObjectFrame:
    """Where a Ptychodus object array sits in the sample plane.

    Attributes:
        height_px, width_px: the object array's shape ``(H, W)``.
        pixel_height_m, pixel_width_m: pixel size in metres (> 0).
        center_y_m, center_x_m: the sample-plane point, in metres, on the array's centre
            ``((H - 1) / 2, (W - 1) / 2)``.

    Raises:
        DataError: a non-positive or non-finite size, or a non-finite centre.
    """

    height_px: int
    width_px: int
    pixel_height_m: float
    pixel_width_m: float
    center_y_m: float = 0.0
    center_x_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("height_px", "width_px"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise DataError(f"object {name} is {value!r}; expected a positive int")
        for name in ("pixel_height_m", "pixel_width_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DataError(f"object {name} is {value!r}; expected a positive size in "
                                "metres (set the object's pixel size in Ptychodus)")
        for name in ("center_y_m", "center_x_m"):
            if not math.isfinite(getattr(self, name)):
                raise DataError(f"object {name} is {getattr(self, name)!r}; expected a finite "
                                "centre in metres")


def window_offset_px(size_px: int) -> float:
    """``N // 2 - (N - 1) / 2``: 0.5 for even ``N``, 0 for odd ``N`` (pixels).

    What to add to a Ptychodus object pixel to get pinn's position for an ``N x N`` window.
    """
    if isinstance(size_px, bool) or int(size_px) != size_px or size_px < 1:
        raise DataError(f"size_px is {size_px!r}; expected the positive pattern side N")
    return size_px // 2 - (size_px - 1) / 2


def positions_to_pinn(x_m: np.ndarray, y_m: np.ndarray, frame: ObjectFrame,
                      size_px: int) -> np.ndarray:
    """Ptychodus scan points in metres -> pinn positions.

    Args:
        x_m, y_m: ``(M,)`` real, the scan points in metres.
        frame: the object array's geometry.
        size_px: the pattern (and probe) side ``N``.

    Returns:
        ``(M, 2)`` float64 ``(y, x)`` object pixels under each window's centre pixel ``N // 2``.

    Raises:
        DataError: shapes differ or are not 1-D, or values are not finite.
    """
    x, y = _coordinates(x_m, y_m)
    offset = window_offset_px(size_px)
    col = (x - frame.center_x_m) / frame.pixel_width_m + (frame.width_px - 1) / 2 + offset
    row = (y - frame.center_y_m) / frame.pixel_height_m + (frame.height_px - 1) / 2 + offset
    return np.stack([row, col], axis=1)  # (M, 2)


def positions_from_pinn(positions_px: np.ndarray, frame: ObjectFrame,
                        size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """pinn positions -> Ptychodus scan points in metres (the inverse of
    :func:`positions_to_pinn`).

    Args:
        positions_px: ``(M, 2)`` real ``(y, x)`` pinn positions (object pixels).
        frame: the object array's geometry.
        size_px: the pattern (and probe) side ``N``.

    Returns:
        ``(x_m, y_m)``, each ``(M,)`` float64 metres.

    Raises:
        DataError: not ``(M, 2)``, or values are not finite.
    """
    pos = np.asarray(positions_px)
    if pos.ndim != 2 or pos.shape[1] != 2 or not np.issubdtype(pos.dtype, np.number) \
            or np.iscomplexobj(pos):
        raise DataError(f"positions have shape {pos.shape} dtype {pos.dtype}; expected real "
                        "(M, 2) (y, x) pixels")
    pos = pos.astype(np.float64)
    if not np.isfinite(pos).all():
        raise DataError("positions hold NaN or infinite values; every position must be finite")
    offset = window_offset_px(size_px)
    x_m = (pos[:, 1] - offset - (frame.width_px - 1) / 2) * frame.pixel_width_m + frame.center_x_m
    y_m = (pos[:, 0] - offset - (frame.height_px - 1) / 2) * frame.pixel_height_m \
        + frame.center_y_m
    return x_m, y_m


def _coordinates(x_m: np.ndarray, y_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x_m), np.asarray(y_m)
    for name, c in (("x", x), ("y", y)):
        if c.ndim != 1 or not np.issubdtype(c.dtype, np.number) or np.iscomplexobj(c):
            raise DataError(f"scan point {name} coordinates have shape {c.shape} dtype "
                            f"{c.dtype}; expected real (M,) metres")
    if x.shape != y.shape:
        raise DataError(f"{x.shape[0]} x coordinates but {y.shape[0]} y coordinates; every "
                        "scan point needs both")
    x, y = x.astype(np.float64), y.astype(np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("scan points hold NaN or infinite coordinates; every point must be "
                        "finite")
    return x, y
