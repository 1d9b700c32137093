"""Tests of pinn.metrics: registration, Fourier shifts, phase alignment, PSNR, SSIM, FRC and
evaluate_reconstruction, each against an independent oracle or a known answer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pinn.errors import ConfigError, DataError
from pinn.metrics import (FRCResult, align_global_phase, align_phase, evaluate_reconstruction,
                          frc, psnr, register_translation, remove_phase_ramp, shift_image, ssim)


def smooth_noise(shape, sigma, rng):
    """Periodic Gaussian-filtered white noise, zero mean, unit standard deviation."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    gain = np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gain).real
    return (field - field.mean()) / field.std()


def blobs(shape, centres, shift=(0.0, 0.0), sigma=2.5):
    """Sum of Gaussian blobs sampled at ``(y + dy, x + dx)``: ``f(p + shift)``."""
    y, x = np.mgrid[:shape[0], :shape[1]].astype(float)
    y, x = y + shift[0], x + shift[1]
    return sum(np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2)) for cy, cx in centres)


def make_object(shape=(96, 96), seed=3, phase_std=0.5):
    rng = np.random.default_rng(seed)
    amplitude = 1 + 0.3 * smooth_noise(shape, 3, rng)
    phase = phase_std * smooth_noise(shape, 3, rng)
    return amplitude * np.exp(1j * phase)


def centred_ramp(shape, gy, gx, offset):
    y, x = np.mgrid[:shape[0], :shape[1]].astype(float)
    return gy * (y - (shape[0] - 1) / 2) + gx * (x - (shape[1] - 1) / 2) + offset


# ---------------------------------------------------------------- registration


@pytest.mark.parametrize("shift", [(3.3, -7.62), (-0.5, 0.25), (10.04, 2.98), (-12.86, -0.1)])
@pytest.mark.parametrize("is_complex", [False, True])
def test_register_recovers_fourier_subpixel_shift(shift, is_complex):
    rng = np.random.default_rng(0)
    reference = smooth_noise((64, 80), 2, rng)
    if is_complex:
        reference = reference * np.exp(1j * smooth_noise((64, 80), 4, rng))
    # moving is reference moved by -shift, so shifting moving by +shift registers it
    moving = shift_image(reference, (-shift[0], -shift[1]))
    found = register_translation(reference, moving)
    assert np.allclose(found, shift, atol=0.05, rtol=0)


@pytest.mark.parametrize("shift", [(3.3, -7.62), (-1.27, 0.61)])
def test_register_recovers_shift_of_sampled_analytic_image(shift):
    """Independent of shift_image: moving is an analytic image sampled on a shifted grid."""
    centres = [(20, 25), (40, 50), (28, 60), (45, 18)]
    reference = blobs((64, 80), centres)
    moving = blobs((64, 80), centres, shift=shift)  # moving(p) = reference(p + shift)
    found = register_translation(reference, moving)
    assert np.allclose(found, shift, atol=0.05, rtol=0)
    assert np.allclose(shift_image(moving, found), reference, atol=0.02)


@given(dy=st.integers(-31, 32), dx=st.integers(-19, 20), seed=st.integers(0, 2**16))
def test_register_integer_shift_is_exact(dy, dx, seed):
    reference = np.random.default_rng(seed).standard_normal((64, 40))
    moving = np.roll(reference, (-dy, -dx), axis=(0, 1))
    assert register_translation(reference, moving) == (float(dy), float(dx))
    assert register_translation(reference, moving, upsample_factor=1) == (float(dy), float(dx))


@pytest.mark.parametrize("shift", [(32, 20), (-31, -19), (32, -19), (0, 0)])
def test_register_integer_shift_range_is_minus_half_exclusive_to_half(shift):
    """A peak at exactly half the size is reported as +H/2 (scikit-image's convention)."""
    reference = np.random.default_rng(24).standard_normal((64, 40))
    moving = np.roll(reference, (-shift[0], -shift[1]), axis=(0, 1))
    assert register_translation(reference, moving) == (float(shift[0]), float(shift[1]))


def test_register_whole_pixel_mode_rounds():
    reference = blobs((48, 48), [(20, 20), (30, 28)])
    moving = blobs((48, 48), [(20, 20), (30, 28)], shift=(2.2, -3.8))
    assert register_translation(reference, moving, upsample_factor=1) == (2.0, -4.0)


def test_register_accepts_torch_tensors():
    reference = blobs((48, 48), [(20, 20), (30, 28)])
    moving = blobs((48, 48), [(20, 20), (30, 28)], shift=(1.5, 0.5))
    found = register_translation(torch.from_numpy(reference), torch.from_numpy(moving).float())
    assert found == register_translation(reference, moving)


# ---------------------------------------------------------------- shift_image


@pytest.mark.parametrize("shift", [(3, -5), (-8, 13), (0, 0)])
def test_shift_image_integer_shift_equals_roll(shift):
    rng = np.random.default_rng(1)
    real = rng.standard_normal((12, 17))
    cplx = real + 1j * rng.standard_normal((12, 17))
    out = shift_image(real, shift)
    assert out.dtype == np.float64
    assert np.allclose(out, np.roll(real, shift, axis=(0, 1)), atol=1e-12)
    out = shift_image(cplx, shift)
    assert out.dtype == np.complex128
    assert np.allclose(out, np.roll(cplx, shift, axis=(0, 1)), atol=1e-12)


def test_shift_image_moves_a_plane_wave_by_a_fraction():
    """exp(2πi f·p) shifted by s is exp(2πi f·(p - s)): content moves by +s."""
    y, x = np.mgrid[:16, :20]
    fy, fx = 3 / 16, -2 / 20

    def wave(dy, dx):
        return np.exp(2j * np.pi * (fy * (y - dy) + fx * (x - dx)))

    assert np.allclose(shift_image(wave(0, 0), (0.37, -1.6)), wave(0.37, -1.6), atol=1e-12)


def test_shift_image_round_trip_and_composition():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((15, 22)) + 1j * rng.standard_normal((15, 22))
    there = shift_image(image, (2.71, -0.33))
    assert np.allclose(shift_image(there, (-2.71, 0.33)), image, atol=1e-12)
    twice = shift_image(shift_image(image, (0.4, 1.1)), (0.9, -2.5))
    assert np.allclose(twice, shift_image(image, (1.3, -1.4)), atol=1e-12)


def test_shift_image_real_smooth_round_trip():
    image = smooth_noise((32, 32), 2, np.random.default_rng(3))
    back = shift_image(shift_image(image, (0.5, -0.25)), (-0.5, 0.25))
    assert np.allclose(back, image, atol=1e-6)


# ---------------------------------------------------------------- phase alignment


@pytest.mark.parametrize("use_mask", [False, True])
def test_align_phase_removes_planted_ramp_and_offset_exactly(use_mask):
    shape = (40, 52)
    reference = make_object(shape, seed=4)
    # steep enough to wrap many times across the image, and an offset beyond π
    ramp = centred_ramp(shape, 0.9, -1.3, 2.5 + 2 * np.pi)
    recon = 0.5 * reference * np.exp(1j * ramp)
    mask = None
    if use_mask:
        mask = np.zeros(shape, bool)
        mask[5:30, 10:45] = True
        recon[~mask] = 7.0  # garbage outside the mask must not matter
    aligned = align_phase(recon, reference, mask)
    selected = np.ones(shape, bool) if mask is None else mask
    assert np.allclose(aligned[selected], 0.5 * reference[selected], atol=1e-10, rtol=0)


def test_align_phase_with_noise_recovers_the_ramp():
    shape = (64, 64)
    rng = np.random.default_rng(5)
    reference = make_object(shape, seed=5)
    noise = 0.3 * rng.standard_normal(shape)
    recon = reference * np.exp(1j * (centred_ramp(shape, 0.4, 0.25, -1.0) + noise))
    residual = np.angle(align_phase(recon, reference) * np.conj(reference))
    assert np.allclose(residual, noise, atol=0.1)


def test_align_phase_is_the_amplitude_weighted_least_squares_plane():
    """With noise, the residual phase satisfies the weighted normal equations
    Σ |reference|·r·(1, x, y) = 0 over the mask."""
    shape = (48, 56)
    rng = np.random.default_rng(21)
    amplitude = np.exp(1.5 * smooth_noise(shape, 4, rng))  # weights over a wide range
    reference = amplitude * np.exp(1j * smooth_noise(shape, 3, rng))
    noise = 0.4 * smooth_noise(shape, 1, rng) + 0.2 * rng.standard_normal(shape)
    recon = reference * np.exp(1j * (centred_ramp(shape, -0.6, 0.2, 1.0) + noise))
    mask = np.ones(shape, bool)
    mask[:, :6] = False
    residual = np.angle(align_phase(recon, reference, mask) * np.conj(reference))
    y, x = np.mgrid[:shape[0], :shape[1]].astype(float)
    for basis in (np.ones(shape), x, y):
        assert abs(np.sum((amplitude * residual * basis)[mask])) < 1e-6 * amplitude.sum()


def test_align_global_phase():
    reference = make_object((20, 20), seed=6)
    recon = 1.7 * reference * np.exp(-2.2j)
    aligned = align_global_phase(recon, reference)
    assert np.allclose(aligned, 1.7 * reference, atol=1e-12)
    mask = np.zeros((20, 20), bool)
    mask[:5] = True
    recon[5:] *= 1j  # a different phase outside the mask is ignored
    assert np.allclose(align_global_phase(recon, reference, mask)[:5], 1.7 * reference[:5],
                       atol=1e-12)


def test_remove_phase_ramp_removes_planes_and_keeps_the_rest():
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:18, :25].astype(float)
    plane = 0.31 * x - 0.7 * y + 4.0
    assert np.allclose(remove_phase_ramp(plane), 0, atol=1e-10)
    pattern = rng.standard_normal((18, 25))
    assert np.allclose(remove_phase_ramp(pattern + plane), remove_phase_ramp(pattern),
                       atol=1e-10)
    # least squares: the residual is orthogonal to 1, x and y
    residual = remove_phase_ramp(pattern)
    for basis in (np.ones_like(x), x, y):
        assert abs(np.sum(residual * basis)) < 1e-9


def test_remove_phase_ramp_fits_over_the_mask_only():
    y, x = np.mgrid[:18, :25].astype(float)
    phase = 0.2 * x + 0.1 * y - 1.0
    mask = x < 12
    phase[~mask] = 50.0
    out = remove_phase_ramp(phase, mask)
    assert np.allclose(out[mask], 0, atol=1e-10)
    assert np.allclose(out[~mask], 50.0 - (0.2 * x + 0.1 * y - 1.0)[~mask], atol=1e-10)


# ---------------------------------------------------------------- PSNR


def test_psnr_known_values_use_the_data_range_not_255():
    reference = np.linspace(0, 1, 64).reshape(8, 8)
    test = reference + 0.1  # MSE 0.01, data range 1
    assert psnr(reference, test) == pytest.approx(20.0, abs=1e-12)
    assert psnr(reference, test, data_range=2.0) == pytest.approx(10 * math.log10(400),
                                                                  abs=1e-12)
    assert psnr(reference, test) != pytest.approx(10 * math.log10(255**2 / 0.01))
    assert psnr(reference, reference) == math.inf


# ---------------------------------------------------------------- SSIM


def ssim_oracle(x, y, data_range):
    """scikit-image's recipe written out: a 7x7 window around every pixel (edges mirrored
    as scipy's 'reflect'), two-pass sample statistics, then crop 3 px and average."""
    xp = np.pad(x, 3, mode="symmetric")
    yp = np.pad(y, 3, mode="symmetric")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            wx = xp[i:i + 7, j:j + 7]
            wy = yp[i:i + 7, j:j + 7]
            mx, my = wx.sum() / 49, wy.sum() / 49
            vx = ((wx - mx) ** 2).sum() / 48
            vy = ((wy - my) ** 2).sum() / 48
            cov = ((wx - mx) * (wy - my)).sum() / 48
            ssim_map[i, j] = ((2 * mx * my + c1) * (2 * cov + c2)
                              / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return ssim_map[3:-3, 3:-3].mean()


@given(height=st.integers(7, 13), width=st.integers(7, 13), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-2, 1.0, 255.0]), similarity=st.floats(-1, 1),
       range_factor=st.sampled_from([0.3, 1.0, 4.0]))
def test_ssim_matches_the_loop_oracle(height, width, seed, scale, similarity, range_factor):
    rng = np.random.default_rng(seed)
    x = scale * rng.random((height, width))
    y = similarity * x + scale * 0.5 * rng.random((height, width))
    data_range = range_factor * scale
    assert abs(ssim(x, y, data_range) - ssim_oracle(x, y, data_range)) < 1e-10


def test_ssim_identical_symmetric_and_bounded():
    rng = np.random.default_rng(8)
    x = rng.random((20, 24))
    y = 0.5 * x + rng.random((20, 24))
    assert ssim(x, x, 1.0) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y, 1.0) == ssim(y, x, 1.0)
    assert -1 <= ssim(x, 1 - x, 1.0) < -0.9  # anti-correlated, equal local means
    assert ssim(torch.from_numpy(x), torch.from_numpy(y), 1.0) == ssim(x, y, 1.0)


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


# ---------------------------------------------------------------- evaluate_reconstruction

KEYS = {"amplitude_ssim", "phase_ssim", "amplitude_psnr", "phase_psnr", "amplitude_mae",
        "phase_mae", "amplitude_mse", "phase_mse", "amplitude_frc50",
        "amplitude_frc_half_bit", "phase_frc50", "phase_frc_half_bit", "shift_y_px",
        "shift_x_px", "global_phase_rad", "amplitude_scale", "n_pixels"}


def test_evaluate_perfect_but_shifted_scaled_and_ramped_recon():
    reference = make_object()
    shape = reference.shape
    recon = (0.7 * np.exp(0.9j) * shift_image(reference, (0.4, -0.7))
             * np.exp(1j * centred_ramp(shape, 0.05, -0.03, 0.0)))
    metrics = evaluate_reconstruction(recon, reference)
    assert set(metrics) == KEYS
    assert all(isinstance(value, float) for value in metrics.values())
    json.dumps(metrics, allow_nan=False)
    assert metrics["amplitude_ssim"] > 0.99
    assert metrics["phase_ssim"] > 0.99
    assert metrics["amplitude_scale"] == pytest.approx(1 / 0.7, rel=0.01)
    assert abs(metrics["shift_y_px"] + 0.4) < 0.15
    assert abs(metrics["shift_x_px"] - 0.7) < 0.15
    assert abs(metrics["global_phase_rad"] + 0.9) < 0.1
    assert metrics["n_pixels"] == (96 - 4) ** 2
    # tapered FRC: the smooth object has little power left at high frequencies, where the
    # subpixel re-registration's interpolation error then dominates
    assert metrics["phase_frc50"] > 0.2


def test_evaluate_identical_images():
    reference = make_object((40, 48))
    metrics = evaluate_reconstruction(reference, reference, register=False)
    assert metrics["amplitude_ssim"] == pytest.approx(1, abs=1e-12)
    assert metrics["phase_ssim"] == pytest.approx(1, abs=1e-12)
    assert metrics["amplitude_psnr"] == math.inf
    assert metrics["phase_mae"] < 1e-12
    assert metrics["amplitude_mae"] < 1e-12
    assert metrics["amplitude_frc_half_bit"] == 0.5
    assert metrics["amplitude_scale"] == pytest.approx(1, abs=1e-12)
    assert metrics["n_pixels"] == 40 * 48
    registered = evaluate_reconstruction(reference, reference)
    assert (registered["shift_y_px"], registered["shift_x_px"]) == (0.0, 0.0)
    assert registered["n_pixels"] == 36 * 44


def test_evaluate_unrelated_object_scores_low():
    reference = make_object(seed=14)
    unrelated = make_object(seed=15)
    metrics = evaluate_reconstruction(unrelated, reference)
    assert metrics["amplitude_ssim"] < 0.3
    assert metrics["phase_ssim"] < 0.3
    assert metrics["amplitude_frc50"] < 0.05


def test_evaluate_uses_only_the_mask_bounding_box():
    reference = make_object((64, 64), seed=16)
    rng = np.random.default_rng(16)
    recon = reference * 0.8 * np.exp(1j * (0.2 + 0.05 * rng.standard_normal((64, 64))))
    mask = np.zeros((64, 64), bool)
    mask[10:50, 8:40] = True
    garbage = recon.copy()
    garbage[~mask] = 1e3 * rng.standard_normal(int((~mask).sum()))
    assert (evaluate_reconstruction(garbage, reference, mask)
            == evaluate_reconstruction(recon[10:50, 8:40], reference[10:50, 8:40]))


def test_evaluate_wraps_the_phase_around_the_reference():
    shape = (48, 48)
    rng = np.random.default_rng(17)
    reference = np.exp(1j * (3.1 + 0.05 * smooth_noise(shape, 3, rng)))  # straddles ±π
    recon = reference * np.exp(1j * 0.01 * rng.standard_normal(shape))
    metrics = evaluate_reconstruction(recon, reference, register=False)
    assert metrics["phase_mae"] < 0.02
    assert math.isnan(metrics["amplitude_ssim"])  # constant amplitude: no data range
    assert math.isnan(metrics["amplitude_psnr"])


def test_evaluate_psnr_uses_the_reference_data_range():
    reference = make_object((48, 48), seed=18)
    recon = reference * np.exp(1j * 0.1 * np.random.default_rng(18).standard_normal((48, 48)))
    metrics = evaluate_reconstruction(recon, reference, register=False)
    phase = np.angle(reference)
    data_range = phase.max() - phase.min()
    assert metrics["phase_psnr"] == pytest.approx(
        10 * math.log10(data_range**2 / metrics["phase_mse"]), rel=1e-12)


def test_phase_ssim_compat_flatters_an_unrelated_nearly_flat_phase():
    """The reference's figure (fixed data range 1 on (φ+π)/2π) scores a phase that knows
    nothing about the object far higher than pinn's phase SSIM."""
    reference = make_object((64, 64), seed=19, phase_std=0.1)
    noise = 0.05 * np.random.default_rng(19).standard_normal((64, 64))
    recon = np.abs(reference) * np.exp(1j * noise)
    metrics = evaluate_reconstruction(recon, reference, phase_ssim_compat=True)
    assert set(metrics) == KEYS | {"phase_ssim_compat"}
    assert metrics["phase_ssim"] < 0.1
    assert metrics["phase_ssim_compat"] > 0.7
    assert "phase_ssim_compat" not in evaluate_reconstruction(recon, reference)


def test_phase_ssim_compat_is_the_reference_recipe():
    """Separate plane removal from each phase, no wrapping, SSIM of (φ+π)/(2π), range 1."""
    reference = make_object((40, 40), seed=22, phase_std=0.3)
    recon = reference * np.exp(1j * (centred_ramp((40, 40), 0.02, 0.01, 0.4)
                                     + 0.2 * np.random.default_rng(22).standard_normal((40, 40))))
    metrics = evaluate_reconstruction(recon, reference, register=False, phase_ssim_compat=True)

    def unit(phase):
        return (remove_phase_ramp(phase) + np.pi) / (2 * np.pi)

    expected = ssim(unit(np.angle(reference)), unit(np.angle(recon)), 1.0)
    assert metrics["phase_ssim_compat"] == pytest.approx(expected, abs=1e-12)


def test_evaluate_fits_the_phase_over_the_mask_only():
    reference = make_object((40, 40), seed=23)
    recon = reference * np.exp(0.6j)
    mask = np.ones((40, 40), bool)
    mask[20:, 20:] = False  # inside the bounding box, but not well covered
    recon[~mask] = reference[~mask] * np.exp(-2.0j)
    metrics = evaluate_reconstruction(recon, reference, mask, register=False)
    assert metrics["global_phase_rad"] == pytest.approx(-0.6, abs=1e-9)


def test_evaluate_accepts_torch_tensors():
    reference = make_object((32, 32), seed=20)
    recon = reference * np.exp(0.3j)
    expected = evaluate_reconstruction(recon, reference)
    got = evaluate_reconstruction(torch.from_numpy(recon), torch.from_numpy(reference),
                                  torch.ones(32, 32, dtype=torch.bool))
    assert got == expected


# ---------------------------------------------------------------- validation

GOOD = np.ones((10, 10))
NAN = np.ones((10, 10))
NAN[3, 4] = np.nan
SMALL = np.ones((6, 10))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: register_translation(GOOD, np.ones((10, 11))), "moving has shape"),
        (lambda: register_translation(GOOD, NAN), r"moving holds 1 NaN.*\(3, 4\)"),
        (lambda: register_translation(np.ones(10), GOOD), "reference has shape"),
        (lambda: register_translation(np.ones((0, 3)), GOOD), "reference is empty"),
        (lambda: register_translation(GOOD > 0, GOOD), "reference has dtype bool"),
        (lambda: register_translation(torch.ones(10, 10) > 0, GOOD), "reference has dtype"),
        (lambda: register_translation(np.full((10, 10), "a"), GOOD), "reference has dtype"),
        (lambda: shift_image(GOOD, (1.0, 2.0, 3.0)), "shift is"),
        (lambda: shift_image(GOOD, (np.nan, 2.0)), "shift is"),
        (lambda: shift_image(NAN, (1.0, 2.0)), "image holds"),
        (lambda: psnr(GOOD, GOOD + 1j), "test is complex"),
        (lambda: psnr(GOOD, GOOD), "reference is constant"),
        (lambda: psnr(GOOD, GOOD, data_range=0.0), "data_range"),
        (lambda: psnr(GOOD, np.ones((10, 9))), "test has shape"),
        (lambda: ssim(SMALL, SMALL, 1.0), r"reference has shape \(6, 10\).*7x7"),
        (lambda: ssim(GOOD, np.ones((9, 10)), 1.0), "test has shape"),
        (lambda: ssim(GOOD, GOOD, -1.0), "data_range"),
        (lambda: ssim(GOOD, GOOD, float("nan")), "data_range"),
        (lambda: ssim(GOOD, GOOD, True), "data_range"),
        (lambda: ssim(GOOD, NAN, 1.0), "test holds"),
        (lambda: frc(GOOD, SMALL), "image2 has shape"),
        (lambda: frc(NAN, GOOD), "image1 holds"),
        (lambda: remove_phase_ramp(GOOD + 1j), "phase is complex"),
        (lambda: remove_phase_ramp(GOOD, np.zeros((10, 10), bool)), "mask selects no"),
        (lambda: align_phase(GOOD, GOOD, np.ones((10, 9), bool)), "mask has shape"),
        (lambda: align_phase(GOOD, GOOD, np.full((10, 10), 0.5)), "mask has dtype"),
        (lambda: align_phase(GOOD, 0 * GOOD), "reference is zero"),
        (lambda: align_global_phase(GOOD, np.ones((9, 10))), "reference has shape"),
        (lambda: evaluate_reconstruction(GOOD, np.ones((10, 11))), "reference has shape"),
        (lambda: evaluate_reconstruction(NAN, GOOD), "recon holds"),
        (lambda: evaluate_reconstruction(GOOD, GOOD, np.zeros((10, 10), bool)),
         "mask selects no"),
        (lambda: evaluate_reconstruction(GOOD, GOOD, _box(10, 2, 8)), "bounding box of mask"),
        (lambda: evaluate_reconstruction(np.ones((14, 14)), np.ones((14, 14)), border_px=4),
         "border_px=4"),
        (lambda: evaluate_reconstruction(0 * GOOD, GOOD, register=False), "recon is zero"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()


def _box(n, start, stop):
    mask = np.zeros((n, n), bool)
    mask[start:stop, start:stop] = True
    return mask


@pytest.mark.parametrize(
    "call",
    [
        lambda: register_translation(GOOD, GOOD, upsample_factor=0),
        lambda: register_translation(GOOD, GOOD, upsample_factor=2.5),
        lambda: evaluate_reconstruction(GOOD, GOOD, border_px=-1),
    ],
)
def test_invalid_options_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_mask_cropped_away_by_the_border_is_reported():
    reference = make_object((20, 20))
    mask = np.zeros((20, 20), bool)
    mask[0, 0] = mask[19, 19] = True  # a full bounding box, but only corner pixels
    with pytest.raises(DataError, match="once border_px=2 is cropped"):
        evaluate_reconstruction(reference, reference, mask)
