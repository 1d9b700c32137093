"""Phase alignment of a complex reconstruction to a reference: global phase, phase ramps.

A reconstruction's phase is only defined up to a constant and, after a subpixel shift of the
diffraction data, a linear ramp. Planes are ``gy·y + gx·x + c`` in radians with ``y`` the
row and ``x`` the column index, measured from the image centre ``((H-1)/2, (W-1)/2)`` (so
``c`` is the value at the centre). Computation is in float64/complex128 NumPy.
"""

from __future__ import annotations

import numpy as np

from pinn.errors import DataError
from pinn.metrics._checks import as_image, as_mask, check_same_shape

_MAX_REFINE_STEPS = 20  # least-squares refinements; they stop once the plane stops moving
_CONVERGED_RAD = 1e-12


def wrap_phase(phase: np.ndarray) -> np.ndarray:
    """``phase`` wrapped into ``(-π, π]``."""
    return np.pi - np.mod(np.pi - phase, 2 * np.pi)


def align_global_phase(recon: object, reference: object, mask: object = None) -> np.ndarray:
    """``recon · exp(iφ)`` with ``φ = angle(Σ reference · conj(recon))`` over ``mask``.

    The constant phase that best matches ``recon`` to ``reference`` in the least-squares
    sense (amplitude-weighted circular mean of the phase difference).

    Args:
        recon, reference: ``(H, W)`` complex (or real) images of the same shape.
        mask: ``(H, W)`` bool, pixels to use (default every pixel).

    Returns:
        ``(H, W)`` complex128, the whole of ``recon`` multiplied by ``exp(iφ)``.

    Raises:
        DataError: on malformed, non-finite or differently shaped inputs, or an empty mask.
    """
    rec, ref = _complex_pair(recon, reference)
    selected = as_mask("mask", mask, rec.shape)
    phi = np.angle(np.sum(ref[selected] * np.conj(rec[selected])))
    return rec * np.exp(1j * phi)


def remove_phase_ramp(phase: object, mask: object = None) -> np.ndarray:
    """``phase`` minus its least-squares plane ``a·x + b·y + c`` fitted over ``mask``.

    Unweighted, no wrapping (the plane is fitted to the values as given).

    Args:
        phase: ``(H, W)`` real, radians.
        mask: ``(H, W)`` bool, pixels the plane is fitted to (default every pixel); the plane
            is subtracted everywhere.

    Returns:
        ``(H, W)`` float64.

    Raises:
        DataError: on a malformed, complex or non-finite phase image or an empty mask.
    """
    values = as_image("phase", phase, complex_ok=False)
    selected = as_mask("mask", mask, values.shape)
    y, x = _centred_grid(values.shape)
    return values - _plane(_fit_plane(values, selected.astype(np.float64), y, x), y, x)


def align_phase(recon: object, reference: object, mask: object = None) -> np.ndarray:
    """``recon`` with the phase ramp and offset relative to ``reference`` removed.

    The plane is fitted to the wrapped phase difference ``angle(recon · conj(reference))``
    over ``mask``, weighted by ``|reference|``; ``recon · exp(-i·plane)`` is returned, whose
    phase then matches the reference's up to noise. The fit is the weighted least-squares
    plane of the *wrapped* residual: starting from the mean phase gradient (``angle`` of
    the summed neighbour products, valid for slopes below π per pixel) and the circular
    mean offset, the plane fitted to the wrapped residual is added until it stops changing,
    so that the final residual ``r`` satisfies ``Σ |reference|·r·(1, x, y) = 0``.

    Args:
        recon, reference: ``(H, W)`` complex images of the same shape.
        mask: ``(H, W)`` bool, pixels the plane is fitted to (default every pixel).

    Returns:
        ``(H, W)`` complex128.

    Raises:
        DataError: on malformed, non-finite or differently shaped inputs, an empty mask, or a
            reference that is zero on the whole mask.
    """
    rec, ref = _complex_pair(recon, reference)
    selected = as_mask("mask", mask, rec.shape)
    plane, _ = phase_difference_plane(rec, ref, selected)
    return rec * np.exp(-1j * plane)


def phase_difference_plane(recon: np.ndarray, reference: np.ndarray,
                           mask: np.ndarray) -> tuple[np.ndarray, float]:
    """The ``(H, W)`` plane fitted to ``angle(recon · conj(reference))`` as in
    :func:`align_phase`, and its value at the image centre wrapped into ``(-π, π]``.

    The arguments are already-checked complex128 arrays and a bool mask of one shape.
    """
    weights = np.where(mask, np.abs(reference), 0.0)  # (H, W)
    if not np.any(weights > 0):
        raise DataError("reference is zero on every pixel of the mask, so the phase "
                        "difference is undefined; choose a mask where the object is nonzero")
    unit = np.exp(1j * np.angle(recon * np.conj(reference)))  # (H, W) phase-difference phasors
    y, x = _centred_grid(recon.shape)
    pairs_y = np.sum(weights[1:] * weights[:-1] * unit[1:] * np.conj(unit[:-1]))
    pairs_x = np.sum(weights[:, 1:] * weights[:, :-1] * unit[:, 1:] * np.conj(unit[:, :-1]))
    coefficients = np.array([np.angle(pairs_y), np.angle(pairs_x), 0.0])
    coefficients[2] = _circular_mean(unit, weights, coefficients, y, x)
    for _ in range(_MAX_REFINE_STEPS):
        residual = np.angle(unit * np.exp(-1j * _plane(coefficients, y, x)))
        update = _fit_plane(residual, weights, y, x)
        coefficients += update
        if np.abs(update).max() < _CONVERGED_RAD:
            break
    return _plane(coefficients, y, x), float(wrap_phase(coefficients[2]))


def _circular_mean(unit, weights, coefficients, y, x) -> float:
    """Weighted circular mean of the phase left after removing the plane."""
    return float(np.angle(np.sum(weights * unit * np.exp(-1j * _plane(coefficients, y, x)))))


def _fit_plane(values: np.ndarray, weights: np.ndarray, y: np.ndarray,
               x: np.ndarray) -> np.ndarray:
    """``(gy, gx, c)`` minimising ``Σ weights · (values - plane)²`` (minimum-norm if the
    weighted pixels do not determine a plane, e.g. a single row)."""
    used = weights > 0
    root = np.sqrt(weights[used])  # (P,)
    design = np.stack([y[used], x[used], np.ones_like(root)], axis=1) * root[:, None]  # (P, 3)
    coefficients, *_ = np.linalg.lstsq(design, values[used] * root, rcond=None)
    return coefficients


def _plane(coefficients: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return coefficients[0] * y + coefficients[1] * x + coefficients[2]


def _centred_grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates ``(H, W)`` measured from the image centre."""
    rows = np.arange(shape[0]) - (shape[0] - 1) / 2
    cols = np.arange(shape[1]) - (shape[1] - 1) / 2
    y, x = np.meshgrid(rows, cols, indexing="ij")
    return y, x


def _complex_pair(recon: object, reference: object) -> tuple[np.ndarray, np.ndarray]:
    rec = as_image("recon", recon).astype(np.complex128)
    ref = as_image("reference", reference).astype(np.complex128)
    check_same_shape("recon", rec, "reference", ref)
    return rec, ref
