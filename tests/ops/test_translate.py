"""Tests of pinn.ops.translate: ``out[y, x] = image[y - dy, x - dx]``, bilinear, zero taps
outside the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import FULL_OF, compiled, fractional_positions, generator, rand
from pinn.ops import translate


def grid_sample_translate(image: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Independent oracle: (H, W) real image, (2,) shift, via grid_sample in float64."""
    height, width = image.shape
    ys = torch.arange(height, dtype=torch.float64) - shift[0]
    xs = torch.arange(width, dtype=torch.float64) - shift[1]
    grid_y, grid_x = torch.meshgrid(2 * ys / (height - 1) - 1, 2 * xs / (width - 1) - 1,
                                    indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1)[None]  # (1, H, W, 2): grid_sample wants (x, y)
    out = F.grid_sample(image.double()[None, None], grid, mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out[0, 0]


def roll_with_zeros(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Integer shift of the last two axes with zeros where content enters from outside."""
    height, width = image.shape[-2:]
    out = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
    rows = torch.arange(height)[:, None] - dy
    cols = torch.arange(width)[None, :] - dx
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return torch.where(inside, out, torch.zeros((), dtype=out.dtype))


# ---------------------------------------------------------------- shapes and broadcasting


@pytest.mark.parametrize(
    ("image_shape", "shift_shape", "out_shape"),
    [
        ((7, 9), (2,), (7, 9)),
        ((3, 7, 9), (3, 2), (3, 7, 9)),
        ((3, 7, 9), (2,), (3, 7, 9)),
        ((7, 9), (4, 2), (4, 7, 9)),
        ((2, 1, 7, 9), (3, 2), (2, 3, 7, 9)),
        ((2, 3, 4, 5, 6), (3, 1, 2), (2, 3, 4, 5, 6)),
        ((1, 5, 5), (4, 1, 2), (4, 1, 5, 5)),
        ((0, 5, 5), (0, 2), (0, 5, 5)),
    ],
)
def test_output_shape_broadcasts_leading_dims(image_shape, shift_shape, out_shape):
    out = translate(torch.randn(image_shape), torch.rand(shift_shape) * 4 - 2)
    assert out.shape == out_shape


def test_broadcast_matches_per_item_calls():
    gen = generator(1)
    image = rand((2, 1, 6, 7), gen=gen)
    shift = torch.rand(3, 2, generator=gen) * 6 - 3
    out = translate(image, shift)  # (2, 3, 6, 7)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(out[b, c], translate(image[b, 0], shift[c]),
                                       rtol=0, atol=0)


def test_batched_shifts_apply_to_matching_images():
    gen = generator(2)
    image = rand((4, 6, 6), gen=gen)
    shift = torch.rand(4, 2, generator=gen) * 4 - 2
    out = translate(image, shift)
    for b in range(4):
        assert torch.equal(out[b], translate(image[b], shift[b]))


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", list(FULL_OF))
def test_output_dtype(dtype):
    image = rand((2, 5, 5), dtype)
    out = translate(image, torch.tensor([0.3, -1.2]))
    assert out.dtype == FULL_OF[dtype]


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_is_real_and_imaginary_parts_translated_separately(dtype):
    image = rand((3, 6, 8), dtype, gen=generator(3))
    shift = torch.tensor([[0.4, 1.7], [-2.3, 0.5], [3.0, -0.25]], dtype=torch.float64)
    out = translate(image, shift)
    torch.testing.assert_close(out.real, translate(image.real, shift), rtol=0, atol=0)
    torch.testing.assert_close(out.imag, translate(image.imag, shift), rtol=0, atol=0)


def test_integer_image_is_promoted_to_float32():
    out = translate(torch.arange(12).reshape(3, 4), torch.tensor([0.0, 1.0]))
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[0.0, 0, 1, 2], [0, 4, 5, 6], [0, 8, 9, 10]]))


def test_double_shift_on_float32_image_gives_float32():
    out = translate(torch.randn(4, 4), torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    image = rand((2, 6, 6), dtype, gen=generator(4))
    shift = torch.tensor([[0.3, 0.6], [1.2, -0.7]])
    expected = translate(image.to(FULL_OF[dtype]), shift)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = translate(image, shift)
    assert out.dtype == FULL_OF[dtype]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_autocast_output_of_a_bf16_layer_is_translated_in_float32():
    layer = torch.nn.Linear(6, 6)
    x = torch.randn(2, 6, 6)
    shift = torch.tensor([0.25, 0.75])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = layer(x)
        assert hidden.dtype == torch.bfloat16
        out = translate(hidden, shift)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, translate(hidden.float(), shift), rtol=0, atol=0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("image", "shift", "error", "match"),
    [
        ([[1.0, 2.0]], torch.zeros(2), TypeError, "image must be a torch.Tensor, got list"),
        (np.zeros((4, 4)), torch.zeros(2), TypeError, "image must be a torch.Tensor"),
        (torch.zeros(4, 4), (0.0, 1.0), TypeError, "shift must be a torch.Tensor, got tuple"),
        (torch.zeros(4), torch.zeros(2), ValueError,
         r"image has shape \(4,\); expected \(\.\.\., H, W\)"),
        (torch.zeros(4, 4), torch.zeros(3), ValueError,
         r"shift has shape \(3,\); expected \(\.\.\., 2\)"),
        (torch.zeros(4, 4), torch.zeros(()), ValueError, r"shift has shape \(\)"),
        (torch.zeros(4, 4), torch.zeros(2, dtype=torch.int64), TypeError,
         "real floating tensor, got torch.int64"),
        (torch.zeros(4, 4), torch.zeros(2, dtype=torch.complex64), TypeError, "real floating"),
        (torch.zeros(4, 4), torch.tensor([float("nan"), 0.0]), ValueError, "NaN or inf"),
        (torch.zeros(4, 4), torch.tensor([0.0, float("inf")]), ValueError, "NaN or inf"),
        (torch.zeros(3, 4, 4), torch.zeros(2, 2), ValueError,
         r"image has shape \(3, 4, 4\) and shift \(2, 2\).*broadcast"),
    ],
)
def test_bad_arguments_raise(image, shift, error, match):
    with pytest.raises(error, match=match):
        translate(image, shift)


# ---------------------------------------------------------------- correctness


def test_zero_shift_is_identity():
    image = rand((3, 5, 7), torch.complex64, gen=generator(5))
    assert torch.equal(translate(image, torch.zeros(2)), image)


def test_positive_shift_moves_content_down_and_right():
    image = torch.zeros(8, 8)
    image[2, 3] = 1.0
    out = translate(image, torch.tensor([1.0, 2.0]))
    assert out[3, 5] == 1.0 and out.sum() == 1.0


def test_fractional_shift_by_hand():
    image = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    out = translate(image, torch.tensor([0.0, 0.25]))  # out[x] = 0.75 img[x] + 0.25 img[x-1]
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.75, 1.75, 2.75]]))
    out = translate(image, torch.tensor([0.0, -0.25]))  # out[x] = 0.75 img[x] + 0.25 img[x+1]
    torch.testing.assert_close(out, torch.tensor([[0.25, 1.25, 2.25, 2.25]]))


def test_taps_outside_contribute_zero_per_corner():
    """A half-pixel shift at the edge averages the inside pixel with a zero, not a clamp."""
    image = torch.ones(3, 3)
    out = translate(image, torch.tensor([0.5, 0.5]))
    expected = torch.tensor([[0.25, 0.5, 0.5], [0.5, 1.0, 1.0], [0.5, 1.0, 1.0]])
    torch.testing.assert_close(out, expected)


@given(
    height=st.integers(1, 9), width=st.integers(1, 9),
    dy=st.integers(-11, 11), dx=st.integers(-11, 11),
    complex_image=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_integer_shift_equals_roll_with_zero_fill(height, width, dy, dx, complex_image, seed):
    """Integer shifts are exact: torch.roll away from the edges (bit for bit) and exactly zero
    on the band where content entered from outside."""
    dtype = torch.complex64 if complex_image else torch.float32
    image = rand((2, height, width), dtype, gen=generator(seed))
    out = translate(image, torch.tensor([float(dy), float(dx)]))
    assert torch.equal(out, roll_with_zeros(image, dy, dx))


@given(
    height=st.integers(2, 8), width=st.integers(2, 8),
    dy=st.floats(-9.5, 9.5), dx=st.floats(-9.5, 9.5), seed=st.integers(0, 2**31 - 1),
)
def test_equals_grid_sample_zeros_align_corners(height, width, dy, dx, seed):
    image = rand((height, width), torch.float64, gen=generator(seed))
    shift = torch.tensor([dy, dx], dtype=torch.float64)
    torch.testing.assert_close(translate(image, shift), grid_sample_translate(image, shift),
                               rtol=1e-12, atol=1e-12)


@given(
    a=st.tuples(st.integers(-6, 6), st.integers(-6, 6)),
    b=st.tuples(st.integers(-6, 6), st.integers(-6, 6)),
    seed=st.integers(0, 2**31 - 1),
)
def test_integer_shifts_compose(a, b, seed):
    """translate(translate(x, a), b) == translate(x, a + b) for integer a, b, except that
    content the first shift pushed out of the image does not come back: the composition is
    zero on the band the second shift brought in from outside. With a and b of the same sign
    per axis nothing can come back, and the two agree everywhere."""
    image = rand((7, 8), torch.float32, gen=generator(seed))
    a_t, b_t = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    twice = translate(translate(image, a_t), b_t)
    once = translate(image, a_t + b_t)
    entered = roll_with_zeros(torch.ones(7, 8), *b) == 0
    assert torch.equal(twice[~entered], once[~entered])
    assert torch.equal(twice[entered], torch.zeros_like(twice[entered]))
    if all(x * y >= 0 for x, y in zip(a, b)):
        assert torch.equal(twice, once)


@given(
    integer=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
    fraction=st.tuples(st.floats(-2.9, 2.9), st.floats(-2.9, 2.9)),
    integer_first=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_integer_and_fractional_shifts_compose_in_the_interior(integer, fraction, integer_first,
                                                               seed):
    """With one shift integer, bilinear shifts compose exactly (to rounding of a + b) at every
    output pixel whose taps the zero fill of the intermediate image cannot have touched:
    pixels whose 2x2 source block lies inside the image when the fractional shift comes
    second, pixels not entered from outside when the integer shift comes second."""
    height, width = 10, 11
    image = rand((height, width), torch.float64, gen=generator(seed))
    n = torch.tensor(integer, dtype=torch.float64)
    f = torch.tensor(fraction, dtype=torch.float64)
    first, second = (n, f) if integer_first else (f, n)
    twice = translate(translate(image, first), second)
    once = translate(image, first + second)
    if integer_first:  # taps of q - f must all be inside the image
        rows = torch.floor(torch.arange(height, dtype=torch.float64) - f[0])
        cols = torch.floor(torch.arange(width, dtype=torch.float64) - f[1])
        ok = ((rows >= 0) & (rows + 1 <= height - 1))[:, None] & \
             ((cols >= 0) & (cols + 1 <= width - 1))[None, :]
    else:  # q - n must be inside the image
        ok = roll_with_zeros(torch.ones(height, width), *integer) != 0
    torch.testing.assert_close(twice[ok], once[ok], rtol=0, atol=1e-12)


@given(
    fy=st.tuples(st.floats(0.01, 0.99), st.floats(0.01, 0.99)),
    fx=st.tuples(st.floats(0.01, 0.99), st.floats(0.01, 0.99)),
    seed=st.integers(0, 2**31 - 1),
)
def test_fractional_shifts_do_not_compose_exactly(fy, fx, seed):
    """Two fractional bilinear shifts are NOT one shift by the sum: each is a 2-tap filter,
    so the composition is a 3-tap filter per axis, ``[(1-f)(1-g), f(1-g) + g(1-f), fg]``,
    which differs from the 2-tap filter of the summed shift by ``fg`` (or ``(1-f)(1-g)`` when
    ``f + g >= 1``) times the second difference. Checked in the interior, away from the zero
    fill, for fractions f = first shift, g = second shift in (0, 1)."""
    image = rand((9, 10), torch.float64, gen=generator(seed))
    first = torch.tensor([fy[0], fx[0]], dtype=torch.float64)
    second = torch.tensor([fy[1], fx[1]], dtype=torch.float64)
    twice = translate(translate(image, first), second)

    def taps(f, g):
        return [(1 - f) * (1 - g), f * (1 - g) + g * (1 - f), f * g]

    ky, kx = taps(*fy), taps(*fx)
    expected = sum(ky[i] * kx[j] * torch.roll(image, (i, j), (0, 1))
                   for i in range(3) for j in range(3))
    torch.testing.assert_close(twice[2:, 2:], expected[2:, 2:], rtol=0, atol=1e-12)

    # and the difference from the summed shift is the predicted second-difference term, along x
    row_image = image[:1]
    f, g = fx
    diff = (translate(translate(row_image, torch.tensor([0.0, f], dtype=torch.float64)),
                      torch.tensor([0.0, g], dtype=torch.float64))
            - translate(row_image, torch.tensor([0.0, f + g], dtype=torch.float64)))
    weight = f * g if f + g < 1 else (1 - f) * (1 - g)
    second_diff = row_image[:, 2:] - 2 * row_image[:, 1:-1] + row_image[:, :-2]
    torch.testing.assert_close(diff[:, 2:], weight * second_diff, rtol=0, atol=1e-12)


def test_shift_out_of_the_image_gives_zeros():
    image = torch.randn(2, 5, 6)
    assert torch.equal(translate(image, torch.tensor([0.5, 6.0])), torch.zeros(2, 5, 6))
    assert torch.equal(translate(image, torch.tensor([-5.0, 0.3])), torch.zeros(2, 5, 6))
    assert translate(image, torch.tensor([0.5, 5.5])).abs().sum() > 0


def test_conjugate_view_is_accepted():
    image = rand((5, 5), torch.complex64, gen=generator(6))
    shift = torch.tensor([0.3, -0.6])
    torch.testing.assert_close(translate(image.conj(), shift), translate(image, shift).conj(),
                               rtol=0, atol=0)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck_image_and_shift(dtype):
    gen = generator(7)
    image = rand((2, 5, 6), dtype, gen=gen).requires_grad_()
    shift = fractional_positions((2,), -3, 3, gen=gen).requires_grad_()
    assert torch.autograd.gradcheck(translate, (image, shift))


def test_gradcheck_broadcast_shift():
    gen = generator(8)
    image = rand((5, 6), torch.float64, gen=gen).requires_grad_()
    shift = fractional_positions((3,), -2, 2, gen=gen).requires_grad_()
    assert torch.autograd.gradcheck(translate, (image, shift))


def test_shift_gradient_is_the_image_derivative():
    """d out / d dx at an interior pixel is -(image[x0 + 1] - image[x0]) along the row, and the
    same along y: the sample point moves by -shift."""
    row = torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0], dtype=torch.float64)
    image = torch.stack([row, 2 * row, 3 * row])  # row k is (k + 1) * row: 2.3 * row at y = 1.3
    shift = torch.tensor([0.7, 0.4], dtype=torch.float64, requires_grad=True)
    translate(image, shift)[2, 3].backward()  # samples (1.3, 2.6)
    value_at = 0.4 * row[2] + 0.6 * row[3]  # the row blend at x = 2.6, i.e. 7
    expected = torch.tensor([-value_at, -2.3 * (row[3] - row[2])], dtype=torch.float64)
    torch.testing.assert_close(shift.grad, expected)


# ---------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_compiled_equals_eager(dtype):
    gen = generator(9)
    image = rand((2, 3, 7, 8), dtype, gen=gen)
    shift = torch.rand(3, 2, generator=gen) * 8 - 4
    torch.testing.assert_close(compiled(translate)(image, shift), translate(image, shift))


def test_compiled_gradients_equal_eager():
    gen = generator(10)
    image = rand((2, 6, 6), torch.float32, gen=gen).requires_grad_()
    shift = fractional_positions((2,), -2, 2, gen=gen, dtype=torch.float32).requires_grad_()
    weights = torch.randn(2, 6, 6, generator=gen)
    grads_eager = torch.autograd.grad((translate(image, shift) * weights).sum(), (image, shift))
    fn = compiled(lambda i, s: (translate(i, s) * weights).sum())
    grads_compiled = torch.autograd.grad(fn(image, shift), (image, shift))
    for a, b in zip(grads_compiled, grads_eager):
        torch.testing.assert_close(a, b)


def test_inductor_equals_eager():
    """The default backend (inductor, C++ codegen) on a small input, values and gradients."""
    gen = generator(11)
    image = rand((2, 6, 7), torch.float32, gen=gen).requires_grad_()
    shift = (torch.rand(2, 2, generator=gen) * 6 - 3).requires_grad_()
    torch._dynamo.reset()
    fn = torch.compile(translate, fullgraph=True)
    out = fn(image, shift)
    torch.testing.assert_close(out, translate(image, shift))
    grads = torch.autograd.grad(out.square().sum(), (image, shift))
    expected = torch.autograd.grad(translate(image, shift).square().sum(), (image, shift))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)
