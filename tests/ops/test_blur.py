"""Gaussian blur renormalised at the border (``pinn.ops.gaussian_blur``)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinn import ops
from pinn.ops.blur import TRUNCATE
from tests.ops._ops_helpers import generator, rand


def _direct(image: torch.Tensor, sigma: float, weights=None) -> torch.Tensor:
    """The definition, pixel by pixel: the Gaussian-weighted mean (weights cut at TRUNCATE
    sigma per axis, times ``weights`` (H, W)) over the neighbours inside the image; a pixel
    with no weighted neighbour keeps its value."""
    height, width = image.shape[-2:]
    radius = max(int(TRUNCATE * sigma + 0.5), 1)
    out = torch.zeros_like(image)
    for y in range(height):
        for x in range(width):
            total, norm = 0, 0.0
            for v in range(max(0, y - radius), min(height, y + radius + 1)):
                for u in range(max(0, x - radius), min(width, x + radius + 1)):
                    weight = math.exp(-0.5 * ((v - y) ** 2 + (u - x) ** 2) / sigma**2)
                    if weights is not None:
                        weight *= float(weights[v, u])
                    total = total + weight * image[..., v, u]
                    norm += weight
            out[..., y, x] = total / norm if norm > 0 else image[..., y, x]
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("sigma,shape", [(1.0, (9, 7)), (2.5, (6, 11)), (0.4, (5, 5))])
def test_matches_the_definition(dtype, sigma, shape):
    image = rand((2, *shape), dtype, generator(0))
    torch.testing.assert_close(ops.gaussian_blur(image, sigma), _direct(image, sigma),
                               rtol=1e-10, atol=1e-10)


def test_weights_make_a_normalised_convolution():
    """Weighted means; zero-weight pixels count for nothing but receive their neighbours'
    mean, and a pixel with no weighted neighbour within reach keeps its value."""
    gen = generator(6)
    image = rand((2, 9, 14), torch.complex128, gen)
    weights = torch.rand(9, 14, generator=gen, dtype=torch.float64)
    weights[:, 9:] = 0  # columns 9-13; with sigma 0.6 (radius 2) columns 12, 13 reach none
    blurred = ops.gaussian_blur(image, 0.6, weights=weights)
    torch.testing.assert_close(blurred, _direct(image, 0.6, weights), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(blurred[..., 12:], image[..., 12:], rtol=0, atol=0)
    assert not torch.allclose(blurred[..., 9:11], image[..., 9:11])
    ones = ops.gaussian_blur(image, 1.5, weights=torch.ones(9, 14, dtype=torch.float64))
    torch.testing.assert_close(ones, ops.gaussian_blur(image, 1.5), rtol=1e-12, atol=1e-12)
    constant = torch.full((9, 14), 2.0 - 1.0j, dtype=torch.complex128)
    torch.testing.assert_close(ops.gaussian_blur(constant, 3.0, weights=weights), constant,
                               rtol=1e-12, atol=1e-12)


def test_a_kernel_wider_than_the_image():
    image = rand((4, 3), torch.float64, generator(1))
    torch.testing.assert_close(ops.gaussian_blur(image, 5.0), _direct(image, 5.0),
                               rtol=1e-10, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(value=st.complex_numbers(max_magnitude=100, allow_nan=False, allow_infinity=False),
       sigma=st.floats(0.1, 20), height=st.integers(1, 12), width=st.integers(1, 12))
def test_a_constant_image_stays_constant(value, sigma, height, width):
    """Also at the border: the mean is over the pixels inside only."""
    image = torch.full((height, width), value, dtype=torch.complex128)
    torch.testing.assert_close(ops.gaussian_blur(image, sigma), image, rtol=1e-12, atol=1e-12)


def test_zero_sigma_returns_the_image():
    image = rand((3, 5, 5), torch.complex64, generator(2))
    assert ops.gaussian_blur(image, 0) is image


def test_high_frequencies_are_damped_as_the_gaussian_gain():
    """Away from the border a cosine of f cycles per pixel keeps exp(-2 pi^2 sigma^2 f^2) of
    its amplitude (up to the kernel's discreteness, small for sigma >= 1)."""
    sigma, f = 2.0, 1 / 8
    x = torch.arange(64, dtype=torch.float64)
    image = torch.cos(2 * math.pi * f * x)[None, :].expand(64, -1)
    blurred = ops.gaussian_blur(image, sigma)[20:44, 20:44]
    gain = math.exp(-2 * math.pi**2 * sigma**2 * f**2)
    torch.testing.assert_close(blurred, gain * image[20:44, 20:44], rtol=0, atol=2e-3)
    checkerboard = (-1.0) ** (x[:, None] + x[None, :])
    assert ops.gaussian_blur(checkerboard, sigma)[20:44, 20:44].abs().max() < 1e-6


def test_complex_blur_is_the_blur_of_each_part_and_batches_are_independent():
    image = rand((3, 2, 10, 9), torch.complex128, generator(3))
    blurred = ops.gaussian_blur(image, 1.7)
    expected = torch.complex(ops.gaussian_blur(image.real, 1.7),
                             ops.gaussian_blur(image.imag, 1.7))
    torch.testing.assert_close(blurred, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blurred[1, 0], ops.gaussian_blur(image[1, 0], 1.7),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,expected", [(torch.float32, torch.float32),
                                            (torch.bfloat16, torch.float32),
                                            (torch.complex64, torch.complex64),
                                            (torch.complex128, torch.complex128)])
def test_precision(dtype, expected):
    image = rand((2, 8, 8), dtype, generator(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ops.gaussian_blur(image, 1.0).dtype == expected


def test_gradients():
    image = rand((2, 6, 5), torch.complex128, generator(5)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.gaussian_blur(x, 1.3), (image,))


@pytest.mark.parametrize("call,message", [
    (lambda: ops.gaussian_blur(torch.ones(4, 4), -1.0), "sigma is -1.0"),
    (lambda: ops.gaussian_blur(torch.ones(4, 4), float("nan")), "sigma is nan"),
    (lambda: ops.gaussian_blur(torch.ones(4, 4), True), "sigma is True"),
    (lambda: ops.gaussian_blur(torch.ones(4), 1.0), "image"),
    (lambda: ops.gaussian_blur([[1.0]], 1.0), "image"),
    (lambda: ops.gaussian_blur(torch.ones(4, 4), 1.0, weights=torch.ones(4, 5)), "weights"),
    (lambda: ops.gaussian_blur(torch.ones(4, 4), 1.0, weights=torch.ones(4, 4) * 1j),
     "weights"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
