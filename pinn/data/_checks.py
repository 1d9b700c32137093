"""Value checks shared by the data modules.

Each check names the field (or the NPZ key) it looks at, says what it found and what to do,
and raises :class:`pinn.errors.DataError`. They run once, where data enters pinn.
"""

from __future__ import annotations

import numpy as np
import torch

from pinn.errors import ConfigError, DataError

AMPLITUDE_HINT = ("; store the diffraction amplitude (abs of the far field) or counts, "
                  "not a complex field")


def as_tensor(name: str, value: object) -> torch.Tensor:
    """``value`` (a tensor, NumPy array or nested sequence) as a CPU tensor, not copied if possible.

    Raises DataError for object, string or otherwise non-numeric arrays.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise DataError(f"{name} has dtype {array.dtype}; expected a numeric array "
                        "(convert it with numpy.asarray(..., dtype=float) first)")
    if array.dtype.byteorder not in "=|":
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == np.uint16 or array.dtype == np.uint32:
        array = array.astype(np.int64)  # torch has no arithmetic on these
    elif array.dtype == np.longdouble and array.dtype != np.float64:
        array = array.astype(np.float64)  # torch has no extended precision
    elif array.dtype == np.clongdouble and array.dtype != np.complex128:
        array = array.astype(np.complex128)
    if not array.flags.c_contiguous:
        array = array.copy()  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    return torch.from_numpy(array)


def check_real(name: str, x: torch.Tensor, hint: str = "") -> None:
    """Real numbers only (not complex, not boolean); ``hint`` is appended to the message."""
    if x.is_complex():
        raise DataError(f"{name} is complex ({x.dtype}); expected real numbers{hint}")
    if x.dtype == torch.bool:
        raise DataError(f"{name} is boolean; expected real numbers{hint}")


def check_shape(name: str, x: torch.Tensor, shape: tuple, layout: str) -> None:
    """``shape`` may hold None for 'any size'."""
    ok = x.dim() == len(shape) and all(
        s is None or s == t for s, t in zip(shape, x.shape, strict=True))
    if not ok:
        raise DataError(f"{name} has shape {tuple(x.shape)}; expected {layout}")


def check_probe(name: str, probe: torch.Tensor, n: int) -> torch.Tensor:
    """A probe for ``n x n`` patterns: ``(n, n)`` or ``(K, n, n)`` modes with K >= 1, finite.
    Returned as given (the caller converts the dtype)."""
    if probe.dim() not in (2, 3) or tuple(probe.shape[-2:]) != (n, n) or probe.numel() == 0:
        raise DataError(f"{name} has shape {tuple(probe.shape)}; expected (N, N) = ({n}, {n}), "
                        f"the pattern size, or (K, {n}, {n}) with K >= 1 incoherent probe "
                        "modes; resample or crop the probe to the detector size")
    check_finite(name, probe)
    return probe


def check_finite(name: str, x: torch.Tensor) -> None:
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise DataError(f"{name} holds {int(bad.sum())} NaN or infinite value(s) (first at "
                            f"index {first}); remove those scan points or fix the values")


def check_nonnegative(name: str, x: torch.Tensor) -> None:
    neg = x < 0
    if bool(neg.any()):
        first = tuple(int(i) for i in neg.nonzero()[0])
        raise DataError(f"{name} holds {int(neg.sum())} negative value(s) (minimum "
                        f"{float(x.min()):.6g} at index {first}); amplitudes and counts cannot "
                        "be negative (background subtraction? clip them at 0)")


def check_nonempty(name: str, x: torch.Tensor) -> None:
    if x.numel() == 0:
        raise DataError(f"{name} is empty (shape {tuple(x.shape)}); expected at least one scan "
                        "point with a non-empty pattern")


def check_integral(name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` as int64 if every value is a whole number, else DataError."""
    check_real(name, x)
    if x.is_floating_point():
        check_finite(name, x)
        if bool((x != torch.round(x)).any()):
            raise DataError(f"{name} holds non-integer values; expected integer indices")
    return x.to(torch.int64)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1, else ConfigError."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and int(value) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_not_all_equal(name: str, positions: torch.Tensor) -> None:
    """Refuse ``(M, 2)`` positions that are all the same point (M >= 2): the coordinates are
    missing or broken. Some repeated positions are fine (repeated exposures, several scans)."""
    if positions.shape[0] >= 2 and bool((positions == positions[:1]).all()):
        y, x = (float(v) for v in positions[0])
        raise DataError(f"{name}: all {positions.shape[0]} scan points are at the same position "
                        f"(y, x) = ({y:.6g}, {x:.6g}); a ptychographic scan moves the probe, so "
                        "the coordinates are missing or wrong. Store the real positions")


def check_windows_inside(name: str, positions: torch.Tensor, object_name: str,
                         object_shape: tuple[int, ...], n: int, hint: str) -> None:
    """Every ``n x n`` window whose centre pixel ``n//2`` sits on a position of ``(M, 2)``
    ``(y, x)`` lies inside the ``(H, W)`` object: ``n//2 <= p <= (H, W) - n + n//2``."""
    height, width = object_shape
    if height < n or width < n:
        raise DataError(f"{object_name} is {height} x {width} pixels, smaller than one {n} x {n} "
                        f"window; {hint}")
    low = torch.tensor([n // 2, n // 2], dtype=positions.dtype)
    high = torch.tensor([height - n + n // 2, width - n + n // 2], dtype=positions.dtype)
    outside = ((positions < low) | (positions > high)).any(dim=1)
    if bool(outside.any()):
        first = int(outside.nonzero()[0])
        y, x = (float(v) for v in positions[first])
        raise DataError(
            f"{name}: {int(outside.sum())} of {positions.shape[0]} positions put the {n} x {n} "
            f"window partly outside {object_name} ({height} x {width}), the first at index "
            f"{first}, (y, x) = ({y:.6g}, {x:.6g}); window centres must lie within "
            f"{tuple(low.tolist())} .. {tuple(high.tolist())}. {hint}")
