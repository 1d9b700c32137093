"""Tests of pinn.metrics.registration: subpixel registration and Fourier shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _metrics_helpers import blobs, smooth_noise
from pinn.metrics import register_translation, shift_image


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
