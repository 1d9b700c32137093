"""Tests of pinn.ops.stitch: ``reassemble(weights * patches) / (reassemble(weights * window)
+ eps)`` and the coverage (weights and window default to ones); the streaming form
(stitch_sums into ``out``, then normalize_stitch) gives the same canvas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import (FULL_OF, compiled, fractional_positions, generator, positions_strategy,
                          rand)
from pinn.ops import normalize_stitch, reassemble_patches, stitch, stitch_sums

COVERAGE_DTYPE = {torch.float32: torch.float32, torch.float64: torch.float64,
                  torch.complex64: torch.float32, torch.complex128: torch.float64,
                  torch.bfloat16: torch.float32, torch.float16: torch.float32}


# ---------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize(
    ("patches_shape", "out_shape"),
    [((4, 3, 3), (9, 10)), ((2, 4, 5, 5), (2, 9, 10)), ((2, 3, 4, 5, 4), (2, 3, 9, 10)),
     ((2, 0, 3, 3), (2, 9, 10))],
)
def test_output_shapes(patches_shape, out_shape):
    positions = torch.rand(*patches_shape[:-2], 2) * 9
    image, coverage = stitch(torch.randn(patches_shape), positions, (9, 10))
    assert image.shape == out_shape and coverage.shape == out_shape


@pytest.mark.parametrize("dtype", list(COVERAGE_DTYPE))
def test_output_dtypes(dtype):
    image, coverage = stitch(rand((2, 3, 4, 4), dtype), torch.rand(2, 3, 2) * 6, (8, 8))
    assert image.dtype == FULL_OF[dtype]
    assert coverage.dtype == COVERAGE_DTYPE[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    patches = rand((2, 3, 4, 4), dtype, gen=generator(1))
    positions = torch.rand(2, 3, 2, generator=generator(2)) * 6
    expected = stitch(patches.to(FULL_OF[dtype]), positions, (8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = stitch(patches, positions, (8, 8))
    assert out[0].dtype == FULL_OF[dtype] and out[1].dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patches": [[[0.0]]]}, TypeError, "patches must be a torch.Tensor, got list"),
        ({"positions": np.zeros((2, 2))}, TypeError, "positions must be a torch.Tensor"),
        ({"patches": torch.zeros(3, 3)}, ValueError, r"patches has shape \(3, 3\); expected"),
        ({"positions": torch.zeros(3, 2)}, ValueError,
         r"positions has shape \(3, 2\) and patches \(2, 3, 3\)"),
        ({"positions": torch.zeros(2, 2, dtype=torch.int64)}, TypeError, "real floating"),
        ({"positions": torch.tensor([[0.0, float("inf")], [0.0, 0.0]])}, ValueError, "NaN or inf"),
        ({"canvas_shape": (0, 4)}, ValueError, "canvas_shape must be a pair"),
        ({"window": torch.ones(3, 4)}, ValueError,
         r"window has shape \(3, 4\); expected the patch shape \(3, 3\)"),
        ({"window": torch.ones(1, 3, 3)}, ValueError, "window has shape"),
        ({"window": [[1.0] * 3] * 3}, TypeError, "window must be a torch.Tensor, got list"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"patches": torch.zeros(2, 3, 3), "positions": torch.zeros(2, 2),
                 "canvas_shape": (4, 4), **kwargs}
    with pytest.raises(error, match=match):
        stitch(**arguments)


# ---------------------------------------------------------------- semantics


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_is_reassembly_divided_by_reassembled_window(dtype):
    gen = generator(3)
    patches = rand((2, 5, 4, 4), dtype, gen=gen)
    positions = torch.rand(2, 5, 2, generator=gen, dtype=torch.float64) * 10 - 1
    window = torch.rand(4, 4, generator=gen, dtype=torch.float64)
    for w, eps in [(None, 1e-9), (window, 1e-3)]:
        weights = torch.ones(4, 4, dtype=torch.float64) if w is None else w
        coverage = reassemble_patches(weights.expand(2, 5, 4, 4), positions, (9, 9))
        numerator = reassemble_patches(patches, positions, (9, 9))
        image, cov = stitch(patches, positions, (9, 9), eps=eps, window=w)
        torch.testing.assert_close(cov, coverage, rtol=0, atol=1e-12)
        torch.testing.assert_close(image, numerator / (coverage + eps), rtol=1e-12, atol=1e-12)


@given(
    lead=st.lists(st.integers(1, 2), max_size=2), n_positions=st.integers(1, 5),
    size=st.integers(1, 6), height=st.integers(1, 10), width=st.integers(1, 10),
    value=st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False),
    complex_values=st.booleans(), data=st.data(),
)
def test_constant_patches_give_the_constant_where_covered(lead, n_positions, size, height,
                                                          width, value, complex_values, data):
    """Stitching constant patches returns the constant wherever the coverage exceeds 1e-3
    (the relative error there is eps / coverage <= 1e-6), and 0 where the coverage is 0 (not
    exactly: a position a subnormal away from an integer gives a neighbour a numerator that
    is subnormal while its coverage weight rounds to 0)."""
    count = math.prod(lead) * n_positions
    positions = data.draw(positions_strategy(count, height, width, margin=size))
    positions = positions.reshape(*lead, n_positions, 2)
    constant = value if complex_values else value.real
    dtype = torch.complex128 if complex_values else torch.float64
    patches = torch.full((*lead, n_positions, size, size), constant, dtype=dtype)
    image, coverage = stitch(patches, positions, (height, width))
    covered = coverage > 1e-3
    expected = torch.full_like(image[covered], constant)
    torch.testing.assert_close(image[covered], expected, rtol=1e-6, atol=1e-9)
    uncovered = image[coverage == 0]
    torch.testing.assert_close(uncovered, torch.zeros_like(uncovered), rtol=0, atol=1e-200)
    assert (coverage >= 0).all()


def test_non_overlapping_integer_patches_are_copied():
    patches = rand((1, 2, 3, 3), gen=generator(4))
    image, coverage = stitch(patches, torch.tensor([[[1.0, 1.0], [1.0, 5.0]]]), (3, 7))
    torch.testing.assert_close(image[0, :, 0:3], patches[0, 0])
    torch.testing.assert_close(image[0, :, 4:7], patches[0, 1])
    assert torch.equal(image[0, :, 3], torch.zeros(3))
    expected = torch.ones(3, 7)
    expected[:, 3] = 0
    assert torch.equal(coverage[0], expected)


def test_overlap_is_averaged():
    patches = torch.stack([torch.full((3, 3), 2.0), torch.full((3, 3), 6.0)])
    image, coverage = stitch(patches, torch.tensor([[1.0, 1.0], [1.0, 2.0]]), (3, 4))
    torch.testing.assert_close(image, torch.tensor([[2.0, 4.0, 4.0, 6.0]] * 3))
    torch.testing.assert_close(coverage, torch.tensor([[1.0, 2.0, 2.0, 1.0]] * 3))


def test_eps_is_added_to_the_coverage():
    image, _ = stitch(torch.full((1, 3, 3), 5.0, dtype=torch.float64), torch.tensor([[1.0, 1.0]]),
                      (3, 3), eps=1e-3)
    torch.testing.assert_close(image, torch.full((3, 3), 5.0 / 1.001, dtype=torch.float64))


def test_window_weights_only_the_coverage():
    """The window enters the coverage, not the numerator: a window of 2 halves the image, and
    pixels covered only by zero-weight window pixels get value / eps (the in-model merge picks
    eps and window together; see docs/DESIGN.md §8, deviation 2)."""
    patches = torch.full((1, 4, 4), 3.0, dtype=torch.float64)
    positions = torch.tensor([[2.0, 2.0]], dtype=torch.float64)
    half, coverage = stitch(patches, positions, (4, 4), window=torch.full((4, 4), 2.0))
    torch.testing.assert_close(half, torch.full((4, 4), 3.0 / (2 + 1e-9), dtype=torch.float64))
    assert torch.equal(coverage, torch.full((4, 4), 2.0, dtype=torch.float64))

    centre = torch.zeros(4, 4, dtype=torch.bool)
    centre[1:3, 1:3] = True  # the reference's centre N/2 window
    image, coverage = stitch(patches, positions, (4, 4), eps=1e-3, window=centre)
    assert torch.equal(coverage, centre.double())
    torch.testing.assert_close(image[centre], torch.full((4,), 3.0 / 1.001, dtype=torch.float64))
    torch.testing.assert_close(image[~centre], torch.full((12,), 3.0 / 1e-3, dtype=torch.float64))


def test_weights_enter_both_sums():
    """Per-pixel weights make a weighted average: with the window too, the coverage takes
    their product; the numerator only the weights."""
    gen = generator(11)
    patches = rand((2, 3, 4, 4), torch.complex128, gen=gen)
    positions = torch.rand(2, 3, 2, generator=gen, dtype=torch.float64) * 6
    weights = torch.rand(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    window = torch.rand(4, 4, generator=gen, dtype=torch.float64)
    for w in (None, window):
        cover = weights if w is None else weights * w
        image, coverage = stitch(patches, positions, (9, 9), eps=1e-3, window=w, weights=weights)
        numerator = reassemble_patches(patches * weights, positions, (9, 9))
        torch.testing.assert_close(coverage, reassemble_patches(cover, positions, (9, 9)),
                                   rtol=0, atol=1e-12)
        torch.testing.assert_close(image, numerator / (coverage + 1e-3), rtol=1e-12, atol=1e-12)


def test_constant_patches_with_any_weights_give_the_constant():
    gen = generator(12)
    patches = torch.full((1, 6, 5, 5), 2.5 - 1j, dtype=torch.complex128)
    positions = torch.rand(1, 6, 2, generator=gen, dtype=torch.float64) * 4 + 3
    weights = torch.rand(1, 6, 5, 5, generator=gen, dtype=torch.float64) + 0.1
    image, coverage = stitch(patches, positions, (11, 11), eps=1e-12, weights=weights)
    covered = coverage > 1e-3
    torch.testing.assert_close(image[covered], torch.full_like(image[covered], 2.5 - 1j))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_sums_added_batch_by_batch_equal_one_pass(dtype):
    """Streaming: stitch_sums adds each batch into the same canvases; the result is the
    one-pass stitch up to the order of the float32 additions, and normalize_stitch divides
    as stitch does (bit for bit on the same sums)."""
    gen = generator(13)
    patches = rand((1, 10, 4, 4), dtype, gen=gen)
    positions = torch.rand(1, 10, 2, generator=gen) * 8 + 1
    weights = torch.rand(1, 10, 4, 4, generator=gen)
    real = torch.float32
    sums = torch.zeros(1, 12, 12, dtype=dtype)
    coverage = torch.zeros(1, 12, 12, dtype=real)
    for part in (slice(0, 3), slice(3, 4), slice(4, 10)):
        returned = stitch_sums(patches[:, part], positions[:, part], (12, 12),
                               weights=weights[:, part], out=(sums, coverage))
        assert returned[0] is sums and returned[1] is coverage
    once = stitch_sums(patches, positions, (12, 12), weights=weights)
    torch.testing.assert_close(sums, once[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(coverage, once[1], rtol=1e-5, atol=1e-6)
    image, cover = stitch(patches, positions, (12, 12), eps=1e-6, weights=weights)
    assert torch.equal(cover, once[1])
    assert torch.equal(normalize_stitch(*once, 1e-6), image)


def test_normalize_stitch_divides_real_and_imaginary_parts():
    sums = torch.tensor([[3.0 + 6.0j, 1.0 - 1.0j]], dtype=torch.complex64)
    coverage = torch.tensor([[3.0, 0.0]])
    out = normalize_stitch(sums, coverage, 0.5)
    expected = torch.complex(sums.real / (coverage + 0.5), sums.imag / (coverage + 0.5))
    assert torch.equal(out, expected)
    assert torch.equal(normalize_stitch(sums.real, coverage, 0.5), expected.real)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"weights": torch.ones(2, 3)}, ValueError, r"weights has shape \(2, 3\); expected"),
    ({"weights": torch.ones(2, 3, 3, dtype=torch.complex64)}, TypeError, "weights must be real"),
    ({"out": (torch.zeros(4, 4), torch.zeros(5, 4))}, ValueError, r"out\[1\] is a \(5, 4\)"),
    ({"out": (torch.zeros(4, 4, dtype=torch.float64), torch.zeros(4, 4))}, ValueError,
     r"out\[0\] is a \(4, 4\) torch.float64"),
    ({"out": (torch.zeros(4, 4), torch.zeros(4, 4, requires_grad=True))}, ValueError,
     "requires grad"),
])
def test_bad_weights_or_out_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        stitch_sums(torch.zeros(2, 3, 3), torch.zeros(2, 2), (4, 4), **kwargs)


def test_conjugate_view_is_accepted():
    patches = rand((2, 3, 3), torch.complex64, gen=generator(5))
    positions = torch.tensor([[2.3, 3.7], [3.1, 2.5]])
    assert torch.equal(stitch(patches.conj(), positions, (6, 6))[0],
                       stitch(patches, positions, (6, 6))[0].conj())


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck_patches_and_positions(dtype):
    """Positions enter both the numerator and the coverage."""
    gen = generator(6)
    patches = rand((2, 3, 4, 4), dtype, gen=gen).requires_grad_()
    positions = fractional_positions((2, 3), 1, 6, gen=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, p: stitch(v, p, (8, 8), eps=1e-3),
                                    (patches, positions))


def test_gradcheck_weights():
    gen = generator(14)
    patches = rand((1, 3, 4, 4), torch.complex128, gen=gen)
    positions = fractional_positions((1, 3), 1, 5, gen=gen)
    weights = (torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w: stitch(patches, positions, (7, 7), eps=1e-3, weights=w), (weights,))


def test_gradcheck_window():
    gen = generator(7)
    patches = rand((1, 3, 4, 4), torch.float64, gen=gen)
    positions = fractional_positions((1, 3), 1, 5, gen=gen)
    window = (torch.rand(4, 4, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w: stitch(patches, positions, (7, 7), eps=1e-3, window=w), (window,))


# ---------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_compiled_equals_eager(dtype):
    gen = generator(8)
    patches = rand((2, 4, 5, 5), dtype, gen=gen)
    positions = torch.rand(2, 4, 2, generator=gen) * 10
    window = torch.rand(5, 5, generator=gen)
    fn = compiled(lambda v, p, w: stitch(v, p, (10, 10), eps=1e-3, window=w))
    torch.testing.assert_close(fn(patches, positions, window),
                               stitch(patches, positions, (10, 10), eps=1e-3, window=window))
