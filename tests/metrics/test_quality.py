"""Tests of pinn.metrics.quality: evaluate_reconstruction on planted shifts, scales, ramps
and unrelated objects."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from _metrics_helpers import centred_ramp, make_object, smooth_noise
from pinn.metrics import evaluate_reconstruction, remove_phase_ramp, shift_image, ssim


# ---------------------------------------------------------------- evaluate_reconstruction

KEYS = {"amplitude_ssim", "phase_ssim", "amplitude_psnr", "phase_psnr", "amplitude_mae",
        "phase_mae", "amplitude_mse", "phase_mse", "amplitude_frc50", "amplitude_correlation",
        "phase_correlation",
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
