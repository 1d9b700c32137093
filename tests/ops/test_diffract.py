"""Tests of pinn.ops.diffract: ``sqrt(fftshift(|fft2(field)|**2) / (H*W))``, DC at
``(H//2, W//2)``, energy preserving."""

from __future__ import annotations

import cmath

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import compiled, generator, rand
from pinn.ops import diffract

AMPLITUDE_DTYPE = {torch.float32: torch.float32, torch.float64: torch.float64,
                   torch.complex64: torch.float32, torch.complex128: torch.float64,
                   torch.bfloat16: torch.float32, torch.float16: torch.float32}


def numpy_diffract(field: torch.Tensor) -> np.ndarray:
    """Independent oracle in numpy double precision."""
    array = field.detach().to(torch.complex128).numpy()
    height, width = array.shape[-2:]
    spectrum = np.fft.fftshift(np.fft.fft2(array), axes=(-2, -1))
    return np.abs(spectrum) / np.sqrt(height * width)


# ---------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("shape", [(8, 8), (3, 8, 8), (2, 3, 4, 6, 5), (1, 1), (7, 9), (0, 4, 4)])
def test_output_shape(shape):
    assert diffract(rand(shape, torch.complex64)).shape == shape


@pytest.mark.parametrize("dtype", list(AMPLITUDE_DTYPE))
def test_output_dtype(dtype):
    assert diffract(rand((2, 6, 6), dtype)).dtype == AMPLITUDE_DTYPE[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    field = rand((2, 8, 8), dtype, gen=generator(1))
    full = field.float() if dtype == torch.bfloat16 else field
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = diffract(field)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, diffract(full), rtol=0, atol=0)


def test_real_field_equals_complex_field_with_zero_imaginary_part():
    field = torch.randn(3, 6, 7)
    as_complex = torch.complex(field, torch.zeros_like(field))
    torch.testing.assert_close(diffract(field), diffract(as_complex), rtol=0, atol=0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("field", "error", "match"),
    [
        (np.ones((4, 4), dtype=np.complex64), TypeError,
         "field must be a torch.Tensor, got ndarray"),
        ([[1.0]], TypeError, "field must be a torch.Tensor, got list"),
        (torch.ones(4, dtype=torch.complex64), ValueError,
         r"field has shape \(4,\); expected \(\.\.\., H, W\)"),
        (torch.ones((), dtype=torch.complex64), ValueError, r"field has shape \(\)"),
    ],
)
def test_bad_arguments_raise(field, error, match):
    with pytest.raises(error, match=match):
        diffract(field)


# ---------------------------------------------------------------- physics


@pytest.mark.parametrize("shape", [(2, 8, 8), (5, 7), (4, 6, 9)])
def test_equals_numpy_oracle(shape):
    field = rand(shape, torch.complex128, gen=generator(2))
    np.testing.assert_allclose(diffract(field).numpy(), numpy_diffract(field), rtol=1e-12,
                               atol=1e-12)


def test_float32_is_close_to_double():
    field = rand((2, 16, 16), torch.complex64, gen=generator(3))
    np.testing.assert_allclose(diffract(field).numpy(), numpy_diffract(field), rtol=2e-5,
                               atol=2e-6)


@given(height=st.integers(1, 12), width=st.integers(1, 12), seed=st.integers(0, 2**31 - 1),
       double=st.booleans())
def test_parseval(height, width, seed, double):
    """sum(amplitude**2) == sum(|field|**2)."""
    dtype = torch.complex128 if double else torch.complex64
    field = rand((2, height, width), dtype, gen=generator(seed))
    energy_in = field.abs().square().sum(dim=(-2, -1)).double()
    energy_out = diffract(field).square().sum(dim=(-2, -1)).double()
    torch.testing.assert_close(energy_out, energy_in, rtol=1e-12 if double else 1e-5, atol=0)


@given(height=st.integers(1, 11), width=st.integers(1, 11),
       value=st.complex_numbers(min_magnitude=1e-3, max_magnitude=1e3, allow_nan=False,
                                allow_infinity=False))
def test_constant_field_puts_everything_at_dc(height, width, value):
    """DC sits at (H//2, W//2), for odd and even sizes, with amplitude |c| sqrt(H*W)."""
    field = torch.full((height, width), value, dtype=torch.complex128)
    out = diffract(field)
    expected = torch.zeros(height, width, dtype=torch.float64)
    expected[height // 2, width // 2] = abs(value) * (height * width) ** 0.5
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-9 * abs(value))


def test_single_frequency_lands_off_centre_by_its_index():
    """A plane wave exp(2 pi i (ky y / H + kx x / W)) lands at (H//2 + ky, W//2 + kx)."""
    height, width, ky, kx = 8, 10, 2, -3
    y = torch.arange(height, dtype=torch.float64)[:, None]
    x = torch.arange(width, dtype=torch.float64)[None, :]
    field = torch.exp(2j * torch.pi * (ky * y / height + kx * x / width))
    out = diffract(field)
    assert out.argmax() == (height // 2 + ky) * width + (width // 2 + kx)
    peak = torch.tensor((height * width) ** 0.5, dtype=torch.float64)
    torch.testing.assert_close(out.max(), peak)


@given(phase=st.floats(-10, 10), seed=st.integers(0, 2**31 - 1))
def test_invariant_under_a_global_phase(phase, seed):
    field = rand((2, 8, 9), torch.complex128, gen=generator(seed))
    rotated = field * cmath.exp(1j * phase)
    torch.testing.assert_close(diffract(rotated), diffract(field), rtol=1e-10, atol=1e-12)


@given(dy=st.integers(-9, 9), dx=st.integers(-9, 9), seed=st.integers(0, 2**31 - 1))
def test_invariant_under_a_circular_shift_of_the_field(dy, dx, seed):
    """A circular shift only multiplies the spectrum by a phase ramp."""
    field = rand((8, 9), torch.complex128, gen=generator(seed))
    shifted = torch.roll(field, (dy, dx), (-2, -1))
    torch.testing.assert_close(diffract(shifted), diffract(field), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9), (6, 5)])
def test_real_field_is_centro_symmetric_about_dc(height, width):
    """|F(-k)| == |F(k)| for a real field: amplitude[H//2 + ky] == amplitude[H//2 - ky]
    (indices mod H)."""
    out = diffract(torch.randn(height, width, dtype=torch.float64))
    rows = (2 * (height // 2) - torch.arange(height)) % height
    cols = (2 * (width // 2) - torch.arange(width)) % width
    torch.testing.assert_close(out[rows][:, cols], out, rtol=1e-12, atol=1e-12)


def test_amplitude_is_non_negative():
    assert (diffract(rand((4, 8, 8), torch.complex64, gen=generator(4))) >= 0).all()


def test_empty_batch():
    out = diffract(torch.zeros(0, 4, 5, dtype=torch.complex128))
    assert out.shape == (0, 4, 5) and out.dtype == torch.float64


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.complex128, torch.float64])
def test_gradcheck(dtype):
    field = rand((2, 3, 5), dtype, gen=generator(5)).requires_grad_()
    assert torch.autograd.gradcheck(diffract, (field,))


@pytest.mark.parametrize("value", [0.0, 1.0 + 0.5j])
def test_gradient_is_finite_where_the_intensity_is_zero(value):
    """A constant field has zero intensity at every non-DC frequency and a zero field has it
    everywhere; sqrt'(0) must not turn the gradient into NaN. Where the intensity is zero the
    amplitude's subgradient 0 is used, so a zero field gets a zero gradient."""
    field = torch.full((2, 4, 4), value, dtype=torch.complex64, requires_grad=True)
    diffract(field).sum().backward()
    assert torch.isfinite(torch.view_as_real(field.grad)).all()
    if value == 0:
        assert torch.equal(field.grad, torch.zeros_like(field.grad))
    else:  # only the DC amplitude |S| / 4 (S = sum(field)) is non-zero; gradient S / |S| / 4
        expected = torch.full((2, 4, 4), value / abs(value) / 4, dtype=torch.complex64)
        torch.testing.assert_close(field.grad, expected)


# ---------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("dtype", [torch.complex64, torch.float32])
def test_compiled_equals_eager(dtype):
    field = rand((2, 3, 8, 8), dtype, gen=generator(6))
    torch.testing.assert_close(compiled(diffract)(field), diffract(field))
