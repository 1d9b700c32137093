"""Pixel-wise similarity of two real images: PSNR and SSIM.

Both take the span of values the images can take (``data_range``) explicitly or from the
reference image — never an assumed 255 (the reference implementation's PSNR uses OpenCV's
default peak of 255 whatever the data; pinn's deliberate deviation 7). Computation is in
float64 NumPy.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pinn.errors import DataError
from pinn.metrics._checks import as_image, check_data_range, check_min_size, check_same_shape

SSIM_WINDOW_PX = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(reference: object, test: object, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10 · log10(R² / MSE)`` in dB.

    Args:
        reference, test: ``(H, W)`` real images of the same shape.
        data_range: ``R``; default ``max(reference) - min(reference)``.

    Returns:
        A Python float; ``inf`` if the images are equal.

    Raises:
        DataError: on malformed, complex, non-finite or differently shaped images, a
            non-positive ``data_range``, or a constant reference when ``data_range`` is None.
    """
    ref, tst = _real_pair(reference, test)
    if data_range is None:
        data_range = float(ref.max() - ref.min())
        if data_range <= 0:
            raise DataError(f"reference is constant ({ref.flat[0]:.6g}), so its data range "
                            "is 0; pass data_range explicitly")
    peak = check_data_range(data_range)
    mse = float(np.mean((ref - tst) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ssim(reference: object, test: object, data_range: float) -> float:
    """Mean structural similarity, as scikit-image's ``structural_similarity`` with its
    defaults for float images.

    Local means, variances and the covariance over 7×7 uniform windows, sample (co)variances
    (factor ``49/48``), ``C1 = (0.01·R)²``, ``C2 = (0.03·R)²``, ``SSIM = (2μxμy + C1)(2σxy + C2)
    / ((μx² + μy² + C1)(σx² + σy² + C2))``. scikit-image filters the whole image and then
    drops 3 pixels from each side of the SSIM map before averaging; that removes exactly the
    windows that touch the border, so averaging over the ``(H-6, W-6)`` fully-inside windows
    is the same number. Symmetric in its two images.

    Args:
        reference, test: ``(H, W)`` real images of the same shape, ``H, W >= 7``.
        data_range: ``R``, the span of values the images can take (for example
            ``reference.max() - reference.min()``); positive.

    Returns:
        A Python float in ``[-1, 1]``.

    Raises:
        DataError: on malformed, complex, non-finite, differently shaped or smaller than 7×7
            images, or a non-positive ``data_range``.
    """
    ref, tst = _real_pair(reference, test)
    check_min_size("reference", ref.shape, " (one 7x7 SSIM window)")
    peak = check_data_range(data_range)
    n = SSIM_WINDOW_PX * SSIM_WINDOW_PX
    sample = n / (n - 1)
    mean_x, mean_y = _window_mean(ref), _window_mean(tst)  # (H-6, W-6) each
    var_x = sample * (_window_mean(ref * ref) - mean_x * mean_x)
    var_y = sample * (_window_mean(tst * tst) - mean_y * mean_y)
    cov = sample * (_window_mean(ref * tst) - mean_x * mean_y)
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(numerator / denominator))


def _window_mean(image: np.ndarray) -> np.ndarray:
    """Mean over every 7×7 window lying fully inside ``image``: ``(H, W) -> (H-6, W-6)``."""
    rows = sliding_window_view(image, SSIM_WINDOW_PX, axis=0).mean(axis=-1)  # (H-6, W)
    return sliding_window_view(rows, SSIM_WINDOW_PX, axis=1).mean(axis=-1)  # (H-6, W-6)


def _real_pair(reference: object, test: object) -> tuple[np.ndarray, np.ndarray]:
    ref = as_image("reference", reference, complex_ok=False)
    tst = as_image("test", test, complex_ok=False)
    check_same_shape("reference", ref, "test", tst)
    return ref, tst
