"""Tests of pinn.metrics.phase: phase ramp removal and amplitude-weighted phase alignment."""

from __future__ import annotations

import numpy as np
import pytest

from _metrics_helpers import centred_ramp, make_object, smooth_noise
from pinn.metrics import align_global_phase, align_phase, remove_phase_ramp


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
