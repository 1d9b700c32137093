"""fourier_shift: exact integer moves, unitary, composable, smooth and exact gradients."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from pinn.ops.fourier_shift import fourier_shift

shifts = st.tuples(st.floats(-5, 5), st.floats(-5, 5))


def _field(seed: int = 0, shape=(12, 10)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=torch.complex128, generator=g)


@given(st.integers(-7, 7), st.integers(-7, 7))
def test_integer_shift_is_a_roll(dy, dx):
    field = _field()
    out = fourier_shift(field, torch.tensor([float(dy), float(dx)]))
    torch.testing.assert_close(out, torch.roll(field, (dy, dx), (0, 1)))


@given(shifts, shifts)
def test_shifts_compose_and_the_adjoint_is_the_opposite_shift(a, b):
    field, other = _field(1), _field(2)
    sa, sb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    torch.testing.assert_close(fourier_shift(fourier_shift(field, sa), sb),
                               fourier_shift(field, sa + sb))
    lhs = (fourier_shift(field, sa).conj() * other).sum()
    rhs = (field.conj() * fourier_shift(other, -sa)).sum()
    torch.testing.assert_close(lhs, rhs)
    torch.testing.assert_close(fourier_shift(field, sa).abs().square().sum(),
                               field.abs().square().sum())


def test_half_pixel_shift_of_a_band_limited_wave_is_exact():
    n = 16
    y = torch.arange(n, dtype=torch.float64)
    wave = torch.exp(2j * torch.pi * 3 * y / n)[:, None].expand(n, n)  # 3 cycles along y
    out = fourier_shift(wave, torch.tensor([0.5, 0.0], dtype=torch.float64))
    expected = torch.exp(2j * torch.pi * 3 * (y - 0.5) / n)[:, None].expand(n, n)
    torch.testing.assert_close(out, expected)


def test_broadcasts_a_batch_of_shifts_over_modes():
    modes = _field(3, (3, 8, 8))
    shift = torch.rand(5, 1, 2, dtype=torch.float64)
    out = fourier_shift(modes, shift)
    assert out.shape == (5, 3, 8, 8)
    torch.testing.assert_close(out[2, 1], fourier_shift(modes[1], shift[2, 0]))


def test_gradients_with_respect_to_field_and_shift():
    field = _field(4, (6, 6)).requires_grad_()
    shift = torch.tensor([0.3, -1.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, s: fourier_shift(f, s), (field, shift))


def test_single_precision_in_and_out():
    out = fourier_shift(_field(5).to(torch.complex64), torch.tensor([0.5, 0.25]))
    assert out.dtype == torch.complex64
