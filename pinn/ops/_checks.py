"""Argument checks shared by the ops: run once at the public boundary, with messages that say
what was found and what is expected. Value-dependent checks are skipped while compiling."""

from __future__ import annotations

import torch


def compiling() -> bool:
    """True while ``torch.compile`` traces the caller (value checks must not run then)."""
    return torch.compiler.is_compiling()


def check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_min_dims(name: str, x: torch.Tensor, n: int, layout: str) -> None:
    if x.dim() < n:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {layout}")


def check_coordinates(name: str, x: torch.Tensor, layout: str) -> None:
    """A real floating tensor whose last axis holds (y, x); finite values."""
    if x.dim() < 1 or x.shape[-1] != 2:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {layout} with (y, x) "
                         "in the last axis")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating tensor, got {x.dtype}")
    if not compiling() and x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf; every position must be finite")


def check_patches_at(patches: object, positions: object) -> None:
    """Patches ``(..., P, n, m)`` and the ``(..., P, 2)`` positions of their centres."""
    check_tensor("patches", patches)
    check_tensor("positions", positions)
    check_min_dims("patches", patches, 3, "(..., P, n, m)")
    check_coordinates("positions", positions, "(..., P, 2)")
    if positions.shape[:-1] != patches.shape[:-2]:
        raise ValueError(
            f"positions has shape {tuple(positions.shape)} and patches {tuple(patches.shape)}; "
            "expected positions (..., P, 2) for patches (..., P, n, m)")


def check_shape_pair(name: str, shape: object) -> tuple[int, int]:
    """Two positive integers (ints, integral floats or 0-d tensors; not a string like "48")."""
    try:
        if isinstance(shape, (str, bytes)):
            raise TypeError
        h, w = shape  # type: ignore[misc]
        ok = all(int(v) == v and v > 0 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a pair (H, W) of positive ints, got {shape!r}")
    return int(h), int(w)


def check_size(name: str, size: object) -> int:
    """A positive integer (an int, or an integral float or 0-d tensor), returned as int."""
    try:
        ok = int(size) == size and size > 0  # type: ignore[call-overload, operator]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive int, got {size!r}")
    return int(size)  # type: ignore[call-overload]


def check_out(name: str, out: object, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    """A canvas to accumulate into in place: contiguous, of this shape and dtype, no grad."""
    check_tensor(name, out)
    if tuple(out.shape) != shape or out.dtype != dtype or not out.is_contiguous():
        raise ValueError(f"{name} is a {tuple(out.shape)} {out.dtype} tensor; expected a "
                         f"contiguous {shape} {dtype} canvas")
    if out.requires_grad:
        raise ValueError(f"{name} requires grad; accumulating in place is not differentiable")
