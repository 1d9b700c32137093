"""Input checks shared by the metrics: conversion to float64/complex128 NumPy arrays.

Each check names the argument, says what it found and what to do, and raises
:class:`pinn.errors.DataError` (or :class:`pinn.errors.ConfigError` for an invalid option).
They run once, at the public functions.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from pinn.errors import ConfigError, DataError

MIN_SIDE_PX = 7  # SSIM's window; smaller images have no valid window


def as_image(name: str, value: object, *, complex_ok: bool = True) -> np.ndarray:
    """``value`` (a NumPy array, a torch tensor or a nested sequence) as a 2-D float64 or
    complex128 array; DataError if it is not numeric, not 2-D, empty or not finite."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype != torch.bool:  # bool is rejected below, like a NumPy bool array
            value = value.to(torch.complex128 if value.is_complex() else torch.float64)
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "iufc":
        raise DataError(f"{name} has dtype {array.dtype}; expected a real or complex numeric "
                        "image (convert it with numpy.asarray(..., dtype=float) first)")
    if array.ndim != 2:
        raise DataError(f"{name} has shape {array.shape}; expected one 2-D image (H, W) — "
                        "drop axes of length 1 or evaluate one image at a time")
    if array.size == 0:
        raise DataError(f"{name} is empty (shape {array.shape}); expected a non-empty image")
    if array.dtype.kind == "c":
        if not complex_ok:
            raise DataError(f"{name} is complex; expected a real image — pass its amplitude "
                            "(abs) or its phase (angle)")
        array = array.astype(np.complex128)
    else:
        array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name} holds {int(bad.sum())} NaN or infinite value(s) (first at "
                        f"index {first}); fix or mask them out before evaluating")
    return array


def as_mask(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a boolean array of ``shape`` (None selects every pixel); DataError if it
    is not boolean or 0/1, has another shape, or selects no pixel."""
    if value is None:
        return np.ones(shape, dtype=bool)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype != bool:
        if array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all():
            raise DataError(f"{name} has dtype {array.dtype} with values other than 0 and 1; "
                            "expected a boolean mask (True marks pixels to use)")
        array = array.astype(bool)
    if array.shape != tuple(shape):
        raise DataError(f"{name} has shape {array.shape}; expected {tuple(shape)}, the shape "
                        "of the images it selects pixels of")
    if not array.any():
        raise DataError(f"{name} selects no pixels; mark at least the well-covered region "
                        "True (or pass mask=None to use every pixel)")
    return array


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise DataError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; "
                        "they must be on the same pixel grid (crop or pad one of them)")


def check_min_size(name: str, shape: tuple[int, ...], hint: str = "") -> None:
    if min(shape) < MIN_SIDE_PX:
        raise DataError(f"{name} has shape {tuple(shape)}; expected at least "
                        f"{MIN_SIDE_PX}x{MIN_SIDE_PX} pixels{hint}")


def check_shift(name: str, value: object) -> tuple[float, float]:
    """``value`` as a finite ``(dy, dx)`` pair of floats."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.shape != (2,) or array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        raise DataError(f"{name} is {value!r}; expected two finite real numbers (dy, dx) "
                        "in pixels")
    return float(array[0]), float(array[1])


def check_data_range(value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not np.isfinite(value) or value <= 0):
        raise DataError(f"data_range is {value!r}; expected a positive finite number, the "
                        "span max - min of the values the images can take")
    return float(value)


def check_int_at_least(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} is {value!r}; expected an integer >= {minimum}")
    return int(value)
