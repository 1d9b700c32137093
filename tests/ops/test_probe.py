"""Tests of pinn.ops.default_probe (the reference's smoothed-disk probe) and
pinn.ops.normalize_probe (``probe / (scale * mean|probe * disk_mask|)``)."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import compiled, generator, rand
from pinn.ops import default_probe, disk_mask, normalize_probe, normalize_probe_modes


def numpy_default_probe(size: int) -> np.ndarray:
    """Independent oracle: Gaussian window outer product > 0.5, then a sigma-1 Gaussian blur
    with scipy's 'reflect' edges (numpy's 'symmetric' padding), truncated at 4 sigma."""
    std = size / (0.7 * math.pi**2)
    n = np.arange(size) - (size - 1) / 2
    window = np.exp(-0.5 * (n / std) ** 2)
    window /= window.max()
    disk = (np.outer(window, window) > 0.5).astype(np.float64)
    taps = np.arange(-4, 5)
    kernel = np.exp(-0.5 * taps**2)
    kernel /= kernel.sum()
    padded = np.pad(disk, 4, mode="symmetric")
    rows = np.stack([np.convolve(row, kernel, mode="valid") for row in padded])
    blurred = np.stack([np.convolve(col, kernel, mode="valid") for col in rows.T]).T
    return blurred + 1e-9


# ---------------------------------------------------------------- default_probe


@pytest.mark.parametrize(("size", "above_half"), [(64, 376), (128, 1500)])
def test_default_probe_reference_values(size, above_half):
    probe = default_probe(size)
    assert probe.shape == (size, size) and probe.dtype == torch.complex64
    assert torch.equal(probe.imag, torch.zeros(size, size))
    assert int((probe.real > 0.5).sum()) == above_half
    assert probe.real.max() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 17, 32, 64])  # below 5 the blur wraps twice
def test_default_probe_equals_numpy_oracle(size):
    np.testing.assert_allclose(default_probe(size).real.numpy(), numpy_default_probe(size),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("size", [16, 64])
def test_default_probe_is_symmetric_and_positive(size):
    amplitude = default_probe(size).real
    assert torch.equal(amplitude, amplitude.flip(0)) and torch.equal(amplitude, amplitude.flip(1))
    assert torch.equal(amplitude, amplitude.T)
    assert (amplitude > 0).all()
    assert amplitude[0, 0] == pytest.approx(1e-9, rel=1e-3)  # far corner: only the offset


@pytest.mark.parametrize("size", [0, -8, 3.5, "64", None])
def test_default_probe_bad_size_raises(size):
    with pytest.raises(ValueError, match="size must be a positive int, got"):
        default_probe(size)


# ---------------------------------------------------------------- normalize_probe


@pytest.mark.parametrize("scale", [4.0, 10.0, 0.5, 1])
def test_mean_abs_inside_the_disk_is_one_over_scale(scale):
    probe = normalize_probe(default_probe(64), scale=scale)
    mean_abs = (probe * disk_mask(64)).abs().mean()
    assert mean_abs.item() == pytest.approx(1 / scale, rel=1e-6)


def test_default_scale_is_four():
    probe = rand((16, 16), torch.complex128, gen=generator(1))
    torch.testing.assert_close(normalize_probe(probe), normalize_probe(probe, scale=4.0),
                               rtol=0, atol=0)


def test_equals_the_formula():
    probe = rand((2, 3, 12, 12), torch.complex128, gen=generator(2))
    mask = disk_mask(12).double()
    mean_abs = (probe * mask).abs().mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(normalize_probe(probe, 10.0), probe / (10.0 * mean_abs),
                               rtol=1e-14, atol=0)


def test_each_probe_of_a_batch_is_normalised_on_its_own():
    probe = torch.stack([default_probe(16), 5 * default_probe(16), 1j * default_probe(16)])
    out = normalize_probe(probe)
    assert out.shape == (3, 16, 16)
    torch.testing.assert_close(out[1], out[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out[2], 1j * out[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close((out * disk_mask(16)).abs().mean(dim=(-2, -1)),
                               torch.full((3,), 0.25), rtol=1e-6, atol=0)


@given(magnitude=st.floats(1e-3, 1e3), phase=st.floats(-math.pi, math.pi),
       seed=st.integers(0, 2**31 - 1))
def test_scaling_the_input_only_keeps_its_phase(magnitude, phase, seed):
    """normalize(c P) == c/|c| normalize(P): the magnitude of c is normalised away and the
    phase of every pixel is kept."""
    probe = rand((10, 10), torch.complex128, gen=generator(seed))
    c = magnitude * cmath.exp(1j * phase)
    torch.testing.assert_close(normalize_probe(c * probe),
                               normalize_probe(probe) * (c / abs(c)), rtol=1e-10, atol=1e-12)


def test_normalising_twice_changes_nothing():
    once = normalize_probe(rand((12, 12), torch.complex128, gen=generator(3)), 4.0)
    torch.testing.assert_close(normalize_probe(once, 4.0), once, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("dtype", "out_dtype"),
    [(torch.complex64, torch.complex64), (torch.complex128, torch.complex128),
     (torch.float32, torch.complex64), (torch.float64, torch.complex128),
     (torch.bfloat16, torch.complex64), (torch.float16, torch.complex64)],
)
def test_output_dtype(dtype, out_dtype):
    probe = (torch.rand(8, 8, generator=generator(4)) + 0.5).to(dtype)
    out = normalize_probe(probe)
    assert out.dtype == out_dtype
    if not dtype.is_complex:
        assert torch.equal(out.imag, torch.zeros_like(out.imag))


def test_autocast_keeps_full_precision():
    probe = default_probe(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = normalize_probe(probe)
        from_half = normalize_probe(probe.real.bfloat16())
    assert out.dtype == torch.complex64 and from_half.dtype == torch.complex64
    torch.testing.assert_close(out, normalize_probe(probe), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("probe", "scale", "error", "match"),
    [
        (np.ones((8, 8)), 4.0, TypeError, "probe must be a torch.Tensor, got ndarray"),
        (torch.ones(8), 4.0, ValueError, r"probe has shape \(8,\); expected \(\.\.\., N, N\)"),
        (torch.ones(8, 6), 4.0, ValueError, r"probe has shape \(8, 6\); expected a square"),
        (torch.ones(8, 8), 0.0, ValueError, "scale must be positive, got 0.0"),
        (torch.ones(8, 8), -4.0, ValueError, "scale must be positive"),
        (torch.ones(8, 8), float("nan"), ValueError, "scale must be positive, got nan"),
        (torch.ones(8, 8) - disk_mask(8), 4.0, ValueError, "zero inside the central disk"),
        (torch.stack([torch.ones(8, 8), torch.zeros(8, 8)]), 4.0, ValueError, "zero inside"),
    ],
)
def test_bad_arguments_raise(probe, scale, error, match):
    with pytest.raises(error, match=match):
        normalize_probe(probe, scale)


def test_gradcheck():
    probe = (rand((6, 6), torch.complex128, gen=generator(5)) + 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: normalize_probe(p, 4.0), (probe,))


def test_compiled_equals_eager():
    probe = rand((2, 16, 16), torch.complex64, gen=generator(6))
    fn = compiled(lambda p: normalize_probe(p, 4.0))
    torch.testing.assert_close(fn(probe), normalize_probe(probe, 4.0))


# ---------------------------------------------------------------- normalize_probe_modes


def test_one_mode_is_normalize_probe_bit_for_bit():
    probe = rand((2, 1, 16, 16), torch.complex64, gen=generator(7))
    out = normalize_probe_modes(probe, 4.0)
    assert out.shape == (2, 1, 16, 16)
    assert torch.equal(out[:, 0], normalize_probe(probe[:, 0], 4.0))


def test_modes_share_one_factor_from_their_total_intensity():
    modes = rand((3, 16, 16), torch.complex128, gen=generator(8)) + 1
    out = normalize_probe_modes(modes, 10.0)
    ratio = out / modes  # one real positive number everywhere
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio[0, 0, 0].real.item()),
                               rtol=1e-12, atol=0)
    total = out.abs().square().sum(0).sqrt()
    assert float((total * disk_mask(16).double()).mean()) == pytest.approx(0.1, rel=1e-12)
    torch.testing.assert_close(normalize_probe_modes(out, 10.0), out, rtol=1e-12, atol=0)


def test_modes_errors_and_gradients():
    with pytest.raises(ValueError, match="zero inside the central disk"):
        normalize_probe_modes(torch.zeros(2, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="scale must be positive"):
        normalize_probe_modes(torch.ones(2, 8, 8), 0.0)
    with pytest.raises(ValueError, match=r"expected K >= 1"):
        normalize_probe_modes(torch.ones(0, 8, 8))
    with pytest.raises(ValueError, match=r"expected \(\.\.\., K, N, N\)"):
        normalize_probe_modes(torch.ones(8, 8))
    modes = (rand((2, 6, 6), torch.complex128, gen=generator(9)) + 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: normalize_probe_modes(m, 4.0), (modes,))
