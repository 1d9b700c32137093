"""Tests of pinn.ops.center_crop and pinn.ops.center_pad: both keep the centre pixel
``(H//2, W//2)`` on the output's centre pixel, and they are adjoint to each other.

Unlike the arithmetic ops they keep the input dtype (bfloat16 stays bfloat16): they only
select or zero-fill pixels, so there is nothing to compute in higher precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import compiled, generator, inner, rand
from pinn.ops import center_crop, center_pad


# ---------------------------------------------------------------- shapes and centre pixel


@pytest.mark.parametrize(
    ("shape", "size", "out_shape"),
    [((8, 8), 4, (4, 4)), ((3, 8, 8), (4, 6), (3, 4, 6)), ((2, 3, 9, 8), (5, 2), (2, 3, 5, 2)),
     ((7, 7), 7, (7, 7)), ((0, 6, 6), 2, (0, 2, 2)), ((4, 5), (2, 1), (2, 1))],
)
def test_crop_shape(shape, size, out_shape):
    assert center_crop(torch.randn(shape), size).shape == out_shape


@pytest.mark.parametrize(
    ("shape", "size", "out_shape"),
    [((4, 4), 8, (8, 8)), ((3, 4, 6), (8, 8), (3, 8, 8)), ((2, 3, 5, 2), (9, 8), (2, 3, 9, 8)),
     ((7, 7), 7, (7, 7)), ((0, 2, 2), 6, (0, 6, 6)), ((1, 1), (3, 5), (3, 5))],
)
def test_pad_shape(shape, size, out_shape):
    assert center_pad(torch.randn(shape), size).shape == out_shape


@pytest.mark.parametrize(("big", "small"), [((8, 8), (4, 4)), ((9, 9), (5, 5)), ((8, 9), (2, 3)),
                                            ((10, 7), (10, 1)), ((6, 6), (6, 6))])
def test_centre_pixel_stays_fixed(big, small):
    image = torch.arange(big[0] * big[1], dtype=torch.float32).reshape(big)
    cropped = center_crop(image, small)
    assert cropped[small[0] // 2, small[1] // 2] == image[big[0] // 2, big[1] // 2]
    padded = center_pad(cropped, big)
    assert padded[big[0] // 2, big[1] // 2] == image[big[0] // 2, big[1] // 2]


def test_crop_is_the_central_slice():
    image = torch.randn(2, 10, 12)
    assert torch.equal(center_crop(image, (6, 4)), image[:, 2:8, 4:8])


def test_pad_fills_zeros_evenly():
    image = torch.ones(2, 3, 5, dtype=torch.complex64)
    padded = center_pad(image, (7, 9))
    assert padded.dtype == torch.complex64
    assert torch.equal(padded[:, 2:5, 2:7], image)
    assert padded.abs().sum() == image.abs().sum()


@given(height=st.integers(1, 10), width=st.integers(1, 10), grow_y=st.integers(0, 4),
       grow_x=st.integers(0, 4), complex_values=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_crop_undoes_pad(height, width, grow_y, grow_x, complex_values, seed):
    dtype = torch.complex64 if complex_values else torch.float32
    image = rand((2, height, width), dtype, gen=generator(seed))
    size = (height + 2 * grow_y, width + 2 * grow_x)
    assert torch.equal(center_crop(center_pad(image, size), (height, width)), image)


@given(height=st.integers(1, 10), width=st.integers(1, 10), shrink_y=st.integers(0, 4),
       shrink_x=st.integers(0, 4), complex_values=st.booleans(), data=st.data(),
       seed=st.integers(0, 2**31 - 1))
def test_crop_and_pad_are_adjoint(height, width, shrink_y, shrink_x, complex_values, data, seed):
    """<crop(x), y> == <x, pad(y)>, with any batch dims."""
    small = (height - 2 * min(shrink_y, (height - 1) // 2),
             width - 2 * min(shrink_x, (width - 1) // 2))  # >= 1, same parity
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    dtype = torch.complex128 if complex_values else torch.float64
    gen = generator(seed)
    x = rand((*lead, height, width), dtype, gen=gen)
    y = rand((*lead, *small), dtype, gen=gen)
    left = inner(center_crop(x, small), y)
    right = inner(x, center_pad(y, (height, width)))
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64,
                                   torch.complex128, torch.bfloat16, torch.int64, torch.bool])
def test_dtype_is_kept(dtype):
    image = torch.ones(6, 6).to(dtype)
    assert center_crop(image, 2).dtype == dtype
    assert center_pad(image, 8).dtype == dtype


def test_autocast_changes_nothing():
    image = torch.randn(2, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cropped, padded = center_crop(image, 4), center_pad(image, 8)
    assert cropped.dtype == torch.float32 and padded.dtype == torch.float32
    assert torch.equal(cropped, image[:, 1:5, 1:5])


def test_pad_accepts_a_conjugate_view():
    image = rand((3, 3), torch.complex64, gen=generator(1))
    assert torch.equal(center_pad(image.conj(), 5), center_pad(image, 5).conj())


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("op", [center_crop, center_pad])
@pytest.mark.parametrize(
    ("image", "size", "error", "match"),
    [
        (np.zeros((6, 6)), 4, TypeError, "image must be a torch.Tensor, got ndarray"),
        (torch.zeros(6), 4, ValueError, r"image has shape \(6,\); expected \(\.\.\., H, W\)"),
        (torch.zeros(6, 6), 0, ValueError,
         r"size must be a pair \(H, W\) of positive ints, got \(0, 0\)"),
        (torch.zeros(6, 6), (4, -2), ValueError, "size must be a pair"),
        (torch.zeros(6, 6), 4.0, ValueError, "size must be a pair .* got 4.0"),
        (torch.zeros(6, 6), "44", ValueError, "size must be a pair"),
        (torch.zeros(6, 6), (4,), ValueError, "size must be a pair"),
        (torch.zeros(6, 6), None, ValueError, "size must be a pair"),
    ],
)
def test_bad_arguments_raise(op, image, size, error, match):
    with pytest.raises(error, match=match):
        op(image, size)


@pytest.mark.parametrize(
    ("op", "shape", "size", "match"),
    [
        (center_crop, (8, 8), 5, "differ by an odd number of pixels"),
        (center_crop, (8, 9), (4, 4), "differ by an odd number of pixels"),
        (center_crop, (8, 8), 10, r"cannot crop \(10, 10\) out of an image of \(8, 8\)"),
        (center_crop, (8, 8), (4, 10), "cannot crop"),
        (center_pad, (8, 8), 11, "differ by an odd number of pixels"),
        (center_pad, (8, 8), 6, r"cannot pad an image of \(8, 8\) to the smaller \(6, 6\)"),
        (center_pad, (8, 8), (10, 6), "cannot pad"),
    ],
)
def test_incompatible_sizes_raise(op, shape, size, match):
    with pytest.raises(ValueError, match=match):
        op(torch.zeros(shape), size)


# ---------------------------------------------------------------- gradients and compile


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck(dtype):
    image = rand((2, 5, 6), dtype, gen=generator(2)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: center_crop(x, (3, 2)), (image,))
    assert torch.autograd.gradcheck(lambda x: center_pad(x, (7, 8)), (image,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_compiled_equals_eager(dtype):
    image = rand((2, 8, 8), dtype, gen=generator(3))
    fn = compiled(lambda x: center_pad(center_crop(x, 4), (10, 6)))
    torch.testing.assert_close(fn(image), center_pad(center_crop(image, 4), (10, 6)))
