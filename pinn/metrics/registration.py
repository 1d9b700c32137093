"""Subpixel image registration by phase correlation, and Fourier-domain image shifts.

Convention (as scikit-image's ``phase_cross_correlation``): a shift ``(dy, dx)`` in pixels
moves image content down/right, ``out[y, x] = image[y - dy, x - dx]`` (circularly), and
:func:`register_translation` returns the shift that, applied to ``moving``, registers it
with ``reference``. Computation is in float64/complex128 NumPy.
"""

from __future__ import annotations

import math

import numpy as np

from pinn.metrics._checks import as_image, check_int_at_least, check_same_shape, check_shift


def register_translation(reference: object, moving: object,
                         upsample_factor: int = 50) -> tuple[float, float]:
    """Shift ``(dy, dx)`` in pixels that registers ``moving`` with ``reference``.

    Phase correlation: the normalised cross-power spectrum ``F_ref · conj(F_mov) / |…|`` is
    inverse-transformed and its integer peak located; the peak is then refined to
    ``1 / upsample_factor`` pixel by evaluating the correlation with a matrix-multiply DFT on
    a grid of ``ceil(1.5 · upsample_factor)`` points per axis around the peak (±0.75 px;
    Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156 (2008)). The same algorithm and
    result as ``skimage.registration.phase_cross_correlation(reference, moving,
    upsample_factor=upsample_factor, normalization="phase")``. ``shift_image(moving, shift)``
    then approximates ``reference``.

    Args:
        reference, moving: ``(H, W)`` real or complex images (NumPy arrays or torch tensors)
            of the same shape. Registration is circular (periodic images).
        upsample_factor: integer >= 1; 1 returns whole-pixel shifts.

    Returns:
        ``(dy, dx)`` as Python floats, each in ``[-H/2, H/2]`` resp. ``[-W/2, W/2]``
        (integer peaks beyond half the size wrap to negative shifts); 0 along an axis of
        length 1.

    Raises:
        DataError: on non-2-D, empty, non-finite or differently shaped images.
        ConfigError: if ``upsample_factor`` is not an integer >= 1.
    """
    ref = as_image("reference", reference)
    mov = as_image("moving", moving)
    check_same_shape("reference", ref, "moving", mov)
    factor = check_int_at_least("upsample_factor", upsample_factor, 1)

    spectrum = np.fft.fft2(ref) * np.conj(np.fft.fft2(mov))  # (H, W)
    eps = np.finfo(np.float64).eps
    spectrum /= np.maximum(np.abs(spectrum), 100 * eps)
    correlation = np.fft.ifft2(spectrum)
    peak = np.unravel_index(int(np.argmax(np.abs(correlation))), correlation.shape)
    shift = np.array([p - n if p > n // 2 else p for p, n in zip(peak, ref.shape)], float)

    if factor > 1:
        size = math.ceil(1.5 * factor)
        centre = size // 2
        offsets = (np.arange(size) - centre) / factor  # (S,) pixels around the integer peak
        rows = _dft_matrix(shift[0] + offsets, ref.shape[0])  # (S, H)
        cols = _dft_matrix(shift[1] + offsets, ref.shape[1])  # (S, W)
        fine = rows @ spectrum @ cols.T  # (S, S) correlation at the subpixel positions
        fine_peak = np.unravel_index(int(np.argmax(np.abs(fine))), fine.shape)
        shift += (np.array(fine_peak) - centre) / factor
    shift[np.array(ref.shape) == 1] = 0.0
    return float(shift[0]), float(shift[1])


def _dft_matrix(positions: np.ndarray, n: int) -> np.ndarray:
    """``(P, n)`` matrix whose product with a length-``n`` spectrum gives its inverse DFT
    (unnormalised) at the real-valued ``positions`` (band-limited interpolation)."""
    return np.exp(2j * np.pi * positions[:, None] * np.fft.fftfreq(n)[None, :])


def shift_image(image: object, shift: object) -> np.ndarray:
    """``image`` with its content moved by ``shift = (dy, dx)`` pixels, by a Fourier shift.

    ``ifft2(fft2(image) · exp(-2πi (dy·ky + dx·kx)))`` with ``ky, kx = fftfreq``: periodic
    (content leaving one side enters at the other), exact band-limited interpolation, and
    an integer shift equals ``numpy.roll``.

    Args:
        image: ``(H, W)`` real or complex (NumPy array or torch tensor).
        shift: ``(dy, dx)`` finite reals in pixels (positive moves content down/right).

    Returns:
        ``(H, W)`` complex128 for complex input; float64 (the real part) for real input.

    Raises:
        DataError: on a non-2-D, empty or non-finite image or a malformed shift.
    """
    array = as_image("image", image)
    dy, dx = check_shift("shift", shift)
    ky = np.fft.fftfreq(array.shape[0])[:, None]  # (H, 1) cycles per pixel
    kx = np.fft.fftfreq(array.shape[1])[None, :]  # (1, W)
    out = np.fft.ifft2(np.fft.fft2(array) * np.exp(-2j * np.pi * (dy * ky + dx * kx)))
    return out if np.iscomplexobj(array) else out.real
