"""Tests of pinn.metrics.frc: Fourier ring correlation against a loop oracle and known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _metrics_helpers import smooth_noise
from pinn.metrics import FRCResult, evaluate_reconstruction, frc


# ---------------------------------------------------------------- FRC


def frc_oracle(a, b):
    """Ring sums on the fftshift-ed spectra with an explicit loop over Fourier pixels."""
    n = a.shape[0]
    f1 = np.fft.fftshift(np.fft.fft2(a))
    f2 = np.fft.fftshift(np.fft.fft2(b))
    rings = n // 2 + 1
    cross, p1, p2 = np.zeros(rings), np.zeros(rings), np.zeros(rings)
    for i in range(n):
        for j in range(n):
            k = int(round(math.hypot(i - n // 2, j - n // 2)))
            if k < rings:
                cross[k] += (f1[i, j] * np.conj(f2[i, j])).real
                p1[k] += abs(f1[i, j]) ** 2
                p2[k] += abs(f2[i, j]) ** 2
    return cross / np.sqrt(p1 * p2)


@pytest.mark.parametrize("n", [9, 10, 16])
def test_frc_matches_the_loop_oracle(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, n))
    b = a + rng.standard_normal((n, n))
    result = frc(a, b)
    assert np.allclose(result.correlation, frc_oracle(a, b), atol=1e-12)
    assert np.allclose(result.frequency, np.arange(n // 2 + 1) / n)
    assert result.pixels_per_ring[0] == 1
    root = np.sqrt(result.pixels_per_ring)
    assert np.allclose(result.half_bit_threshold,
                       (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root))


def test_frc_of_identical_images_is_one():
    image = np.random.default_rng(9).standard_normal((32, 32))
    result = frc(image, image)
    assert isinstance(result, FRCResult)
    assert np.allclose(result.correlation, 1.0, atol=1e-12)
    assert result.resolution_0p5 == 0.5
    assert result.resolution_half_bit == 0.5
    assert result.frequency[-1] == 0.5
    assert result.period_px[0] == math.inf
    assert np.allclose(result.period_px[1:], 1 / result.frequency[1:])
    assert result.resolution_0p5_period_px == 2.0


def test_frc_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(10)
    result = frc(rng.standard_normal((128, 128)), rng.standard_normal((128, 128)))
    high = slice(4, None)
    # each ring's correlation is about normal with standard deviation 1/sqrt(pixels)
    z = result.correlation[high] * np.sqrt(result.pixels_per_ring[high])
    assert np.all(np.abs(z) < 5)
    assert 0.5 < np.mean(z**2) < 2
    assert abs(np.mean(z)) < 0.5
    assert result.resolution_0p5 < 0.05


def test_frc_resolution_decreases_with_blur():
    rng = np.random.default_rng(11)
    obj = rng.standard_normal((96, 96))
    resolutions = []
    for sigma in (0.5, 1.0, 2.0, 3.0):
        ky = np.fft.fftfreq(96)[:, None]
        kx = np.fft.fftfreq(96)[None, :]
        blurred = np.fft.ifft2(np.fft.fft2(obj)
                               * np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2))).real
        # two measurements of the same blurred object with independent noise
        first = blurred + 0.05 * rng.standard_normal((96, 96))
        second = blurred + 0.05 * rng.standard_normal((96, 96))
        result = frc(first, second)
        resolutions.append((result.resolution_0p5, result.resolution_half_bit))
    for sharper, blurrier in zip(resolutions, resolutions[1:]):
        assert blurrier[0] < sharper[0]
        assert blurrier[1] < sharper[1]


def test_tapered_frc_finds_the_noise_floor_that_the_plain_frc_misses():
    """A smooth crop out of a larger, non-periodic image against a noisy copy of itself: the
    plain DFT sees the same edge jumps in both, whose power decays only as 1/k^2 and
    correlates up to Nyquist; with the taper, the resolution is where the smooth signal sinks
    below the noise (about 0.16 cycles/px here)."""
    rng = np.random.default_rng(12)
    big = 3 + smooth_noise((160, 160), 4, rng) + np.linspace(0, 4, 160)[None, :]  # no period
    truth = big[40:120, 40:120]
    estimate = truth + 0.02 * rng.standard_normal((80, 80))
    plain = frc(truth, estimate)
    assert plain.resolution_half_bit == 0.5 and plain.resolution_0p5 == 0.5
    tapered = frc(truth, estimate, taper=True)
    assert 0.1 < tapered.resolution_half_bit < 0.25
    assert 0.1 < tapered.resolution_0p5 < 0.25
    assert frc(truth, truth, taper=True).resolution_half_bit == 0.5
    metrics = evaluate_reconstruction(estimate, truth, register=False)
    assert metrics["amplitude_frc_half_bit"] == pytest.approx(tapered.resolution_half_bit)
    assert metrics["amplitude_frc50"] == pytest.approx(tapered.resolution_0p5)


def test_frc_resolution_is_the_interpolated_first_crossing():
    rng = np.random.default_rng(12)
    obj = smooth_noise((64, 64), 1.5, rng)
    result = frc(obj + 0.3 * rng.standard_normal((64, 64)),
                 obj + 0.3 * rng.standard_normal((64, 64)))
    c, f = result.correlation, result.frequency
    k = next(i for i in range(1, len(c)) if c[i] < 0.5)
    expected = f[k - 1] + (c[k - 1] - 0.5) / (c[k - 1] - c[k]) * (f[k] - f[k - 1])
    assert 0.05 < result.resolution_0p5 < 0.45
    assert result.resolution_0p5 == pytest.approx(expected, abs=1e-15)


def test_frc_centre_crops_to_a_common_square():
    rng = np.random.default_rng(13)
    a = rng.standard_normal((40, 50))
    b = rng.standard_normal((44, 41))
    expected = frc(a[:, 5:45], b[2:42, :40])
    result = frc(a, b)
    assert np.array_equal(result.correlation, expected.correlation)
