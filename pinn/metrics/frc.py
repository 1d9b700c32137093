"""Fourier ring correlation (FRC) of two images, with the 0.5 and half-bit resolution.

Frequencies are normalised: cycles per pixel, from 0 (DC) to 0.5 (Nyquist); a frequency
``f`` corresponds to a period of ``1/f`` pixels. Computation is in float64/complex128 NumPy.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pinn.metrics._checks import as_image, check_min_size


@dataclasses.dataclass(frozen=True, eq=False)
class FRCResult:
    """An FRC curve over integer-radius rings ``k = 0 … n//2`` of an ``n×n`` spectrum.

    Attributes:
        frequency: ``(R,)`` float64, ``k / n`` cycles per pixel.
        correlation: ``(R,)`` float64 in ``[-1, 1]``.
        pixels_per_ring: ``(R,)`` int64, Fourier pixels in each ring.
        half_bit_threshold: ``(R,)`` float64, van Heel & Schatz (J. Struct. Biol. 151, 250
            (2005)): ``(0.2071 + 1.9102/√n) / (1.2071 + 0.9102/√n)`` for ``n`` pixels.
        resolution_0p5: first frequency (above DC) where the curve drops below 0.5,
            linearly interpolated between rings; 0.5 if it never does.
        resolution_half_bit: the same for the half-bit threshold curve.
    """

    frequency: np.ndarray
    correlation: np.ndarray
    pixels_per_ring: np.ndarray
    half_bit_threshold: np.ndarray
    resolution_0p5: float
    resolution_half_bit: float

    @property
    def period_px(self) -> np.ndarray:
        """``(R,)`` float64, ``1 / frequency`` in pixels (``inf`` at DC)."""
        return _reciprocal(self.frequency)

    @property
    def resolution_0p5_period_px(self) -> float:
        """:attr:`resolution_0p5` as a period in pixels (``inf`` if it is 0)."""
        return float(_reciprocal(np.float64(self.resolution_0p5)))

    @property
    def resolution_half_bit_period_px(self) -> float:
        """:attr:`resolution_half_bit` as a period in pixels (``inf`` if it is 0)."""
        return float(_reciprocal(np.float64(self.resolution_half_bit)))


def frc(image1: object, image2: object, *, taper: bool = False) -> FRCResult:
    """Fourier ring correlation of two images.

    Both images are centre-cropped to the largest square that fits in both (side ``n``,
    start ``(H - n) // 2``). With ``F1, F2`` their unshifted 2-D DFTs, ring ``k`` holds the
    frequencies whose distance from DC, in Fourier pixels, rounds to ``k``, for
    ``k = 0 … n//2`` (up to Nyquist; the corners beyond are ignored), and
    ``FRC_k = Re Σ F1·conj(F2) / sqrt(Σ|F1|² · Σ|F2|²)`` over the ring (0 for a ring with no
    power in one image). The resolutions search from ring 1 (the DC ring is a single pixel).

    With ``taper`` each cropped image has its mean removed and is multiplied by a separable
    Hann window before the transform. Use it for images cut out of larger ones (a
    reconstruction's evaluated region): the DFT treats an image as periodic, so the jump
    between opposite edges, and any boundary both images share, put correlated power at
    every frequency and an untapered FRC of two merely similar crops stays above threshold up
    to Nyquist.

    Args:
        image1, image2: ``(H1, W1)``, ``(H2, W2)`` real or complex, every side >= 7.
        taper: remove the mean and apply a Hann window (default: the images as given).

    Returns:
        An :class:`FRCResult`.

    Raises:
        DataError: on malformed, non-finite or smaller than 7×7 images.
    """
    first = as_image("image1", image1)
    second = as_image("image2", image2)
    check_min_size("image1", first.shape)
    check_min_size("image2", second.shape)
    n = min(*first.shape, *second.shape)
    first, second = _centre_square(first, n), _centre_square(second, n)
    if taper:
        window = np.outer(np.hanning(n), np.hanning(n))
        first = (first - first.mean()) * window
        second = (second - second.mean()) * window
    spectrum1 = np.fft.fft2(first)  # (n, n)
    spectrum2 = np.fft.fft2(second)
    k = np.fft.fftfreq(n) * n  # signed integer frequency index
    ring = np.rint(np.hypot(k[:, None], k[None, :])).astype(np.int64).ravel()  # (n*n,)
    rings = n // 2 + 1
    inside = ring < rings
    ring = ring[inside]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(ring, weights=values.ravel()[inside], minlength=rings)

    cross = ring_sum((spectrum1 * np.conj(spectrum2)).real)
    power = ring_sum(np.abs(spectrum1) ** 2) * ring_sum(np.abs(spectrum2) ** 2)
    correlation = np.divide(cross, np.sqrt(power), out=np.zeros(rings), where=power > 0)
    pixels = np.bincount(ring, minlength=rings)
    root = np.sqrt(pixels)
    threshold = (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)
    frequency = np.arange(rings) / n
    return FRCResult(
        frequency=frequency,
        correlation=correlation,
        pixels_per_ring=pixels,
        half_bit_threshold=threshold,
        resolution_0p5=_crossing(frequency, correlation - 0.5),
        resolution_half_bit=_crossing(frequency, correlation - threshold),
    )


def _crossing(frequency: np.ndarray, excess: np.ndarray) -> float:
    """First frequency above DC where ``excess`` becomes negative, interpolated linearly
    from the ring before (or that ring's frequency if ``excess`` was not positive there);
    0.5 if it never does."""
    below = np.flatnonzero(excess[1:] < 0) + 1
    if below.size == 0:
        return 0.5
    k = int(below[0])
    if excess[k - 1] <= 0:
        return float(frequency[k - 1])
    fraction = excess[k - 1] / (excess[k - 1] - excess[k])
    return float(frequency[k - 1] + fraction * (frequency[k] - frequency[k - 1]))


def _centre_square(image: np.ndarray, n: int) -> np.ndarray:
    top = (image.shape[0] - n) // 2
    left = (image.shape[1] - n) // 2
    return image[top:top + n, left:left + n]


def _reciprocal(values: np.ndarray) -> np.ndarray:
    return np.divide(1.0, values, out=np.full(np.shape(values), np.inf), where=values != 0)
