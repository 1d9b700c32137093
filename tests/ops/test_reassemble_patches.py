"""Tests of pinn.ops.reassemble_patches: a bilinear scatter-add of patches onto zero canvases,
the exact adjoint of extract_patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import (FULL_OF, VIEW_OPS, compiled, fractional_positions, generator, inner,
                          ops_touching, positions_strategy, rand)
from pinn.ops import extract_patches, reassemble_patches


def placed_by_slicing(patches: torch.Tensor, positions, height: int, width: int) -> torch.Tensor:
    """Oracle for integer positions: (P, n, m) patches added into a zero-padded canvas."""
    n, m = patches.shape[-2:]
    pad = n + m + max(abs(int(v)) for pos in positions for v in pos) + height + width
    canvas = torch.zeros(height + 2 * pad, width + 2 * pad, dtype=patches.dtype)
    for patch, (y, x) in zip(patches, positions):
        top, left = pad + int(y) - n // 2, pad + int(x) - m // 2
        canvas[top:top + n, left:left + m] += patch
    return canvas[pad:pad + height, pad:pad + width]


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("patches_shape", "canvas_shape", "out_shape"),
    [
        ((4, 3, 3), (9, 10), (9, 10)),
        ((2, 4, 5, 5), (9, 9), (2, 9, 9)),
        ((2, 3, 4, 5, 5), [7, 8], (2, 3, 7, 8)),
        ((2, 3, 4, 6), torch.Size([6, 5]), (2, 6, 5)),
        ((2, 0, 3, 3), (8, 8), (2, 8, 8)),
        ((0, 4, 3, 3), (8, 8), (0, 8, 8)),
        ((1, 2, 12, 12), (4, 4), (1, 4, 4)),
    ],
)
def test_output_shape(patches_shape, canvas_shape, out_shape):
    positions = torch.rand(*patches_shape[:-2], 2) * 8
    out = reassemble_patches(torch.randn(patches_shape), positions, canvas_shape)
    assert out.shape == out_shape


def test_empty_patch_set_gives_zero_canvases():
    out = reassemble_patches(rand((2, 0, 3, 3), torch.complex64), torch.zeros(2, 0, 2), (5, 6))
    assert torch.equal(out, torch.zeros(2, 5, 6, dtype=torch.complex64))


def test_each_patch_lands_on_its_own_canvas():
    patches = torch.arange(1.0, 4.0)[:, None, None, None].expand(3, 2, 3, 3)  # value b + 1
    out = reassemble_patches(patches, torch.full((3, 2, 2), 4.0), (9, 9))
    for b in range(3):
        assert torch.equal(out[b].unique(), torch.tensor([0.0, 2.0 * (b + 1)]))


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", list(FULL_OF))
def test_output_dtype(dtype):
    out = reassemble_patches(rand((2, 3, 4, 4), dtype), torch.rand(2, 3, 2) * 8, (8, 8))
    assert out.dtype == FULL_OF[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    patches = rand((2, 3, 5, 5), dtype, gen=generator(1))
    positions = torch.rand(2, 3, 2, generator=generator(2)) * 8
    expected = reassemble_patches(patches.to(FULL_OF[dtype]), positions, (8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = reassemble_patches(patches, positions, (8, 8))
    assert out.dtype == FULL_OF[dtype]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patches": [[[0.0]]]}, TypeError, "patches must be a torch.Tensor, got list"),
        ({"positions": np.zeros((2, 2))}, TypeError, "positions must be a torch.Tensor"),
        ({"patches": torch.zeros(3, 3), "positions": torch.zeros(2)}, ValueError,
         r"patches has shape \(3, 3\); expected \(\.\.\., P, n, m\)"),
        ({"positions": torch.zeros(3, 2)}, ValueError,
         r"positions has shape \(3, 2\) and patches \(2, 3, 3\)"),
        ({"patches": torch.zeros(2, 4, 3, 3), "positions": torch.zeros(4, 2)}, ValueError,
         "expected positions"),
        ({"positions": torch.zeros(2, 3)}, ValueError, r"positions has shape \(2, 3\); expected"),
        ({"positions": torch.zeros(2, 2, dtype=torch.int32)}, TypeError, "real floating"),
        ({"positions": torch.tensor([[0.0, 0.0], [float("nan"), 0.0]])}, ValueError, "NaN or inf"),
        ({"canvas_shape": (4,)}, ValueError,
         r"canvas_shape must be a pair \(H, W\) of positive ints, got \(4,\)"),
        ({"canvas_shape": (4, 4, 4)}, ValueError, "canvas_shape must be a pair"),
        ({"canvas_shape": (0, 4)}, ValueError, "canvas_shape must be a pair"),
        ({"canvas_shape": (4, -1)}, ValueError, "canvas_shape must be a pair"),
        ({"canvas_shape": (7.5, 4)}, ValueError, "canvas_shape must be a pair"),
        ({"canvas_shape": None}, ValueError, "canvas_shape must be a pair"),
        ({"canvas_shape": "48"}, ValueError, "canvas_shape must be a pair"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"patches": torch.zeros(2, 3, 3), "positions": torch.zeros(2, 2),
                 "canvas_shape": (4, 4), **kwargs}
    with pytest.raises(error, match=match):
        reassemble_patches(**arguments)


# ---------------------------------------------------------------- adjointness and correctness


@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n_positions=st.integers(1, 4), size=st.integers(1, 6),
    height=st.integers(1, 10), width=st.integers(1, 10), complex_values=st.booleans(),
    data=st.data(), seed=st.integers(0, 2**31 - 1),
)
def test_adjoint_of_extract(lead, n_positions, size, height, width, complex_values, data, seed):
    """<extract(c, p), v> == <c, reassemble(v, p)> (complex inner product sum(a * conj(b))),
    with any leading dims and positions partly or fully outside the canvas."""
    dtype = torch.complex128 if complex_values else torch.float64
    gen = generator(seed)
    count = math.prod(lead) * n_positions
    positions = data.draw(positions_strategy(count, height, width, margin=size + 2))
    positions = positions.reshape(*lead, n_positions, 2)
    canvas = rand((*lead, height, width), dtype, gen=gen)
    patches = rand((*lead, n_positions, size, size), dtype, gen=gen)
    left = inner(extract_patches(canvas, positions, size), patches)
    right = inner(canvas, reassemble_patches(patches, positions, (height, width)))
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


@given(
    n=st.integers(1, 6), m=st.integers(1, 6), height=st.integers(1, 9), width=st.integers(1, 9),
    positions=st.lists(st.tuples(st.integers(-7, 14), st.integers(-7, 14)), min_size=1,
                       max_size=4),
    complex_values=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_integer_positions_equal_slice_assignment(n, m, height, width, positions,
                                                  complex_values, seed):
    """Integer positions: each patch is added in place (centre pixel (n//2, m//2) on the
    position), overlaps summed, what falls outside dropped. Exact up to summation order."""
    dtype = torch.complex128 if complex_values else torch.float64
    patches = rand((len(positions), n, m), dtype, gen=generator(seed))
    out = reassemble_patches(patches, torch.tensor(positions, dtype=torch.float32),
                             (height, width))
    torch.testing.assert_close(out, placed_by_slicing(patches, positions, height, width),
                               rtol=0, atol=1e-12)


def test_single_pixel_patch_is_split_bilinearly():
    out = reassemble_patches(torch.ones(1, 1, 1), torch.tensor([[1.25, 2.5]]), (4, 5))
    expected = torch.zeros(4, 5)
    expected[1, 2], expected[1, 3] = 0.75 * 0.5, 0.75 * 0.5
    expected[2, 2], expected[2, 3] = 0.25 * 0.5, 0.25 * 0.5
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)


def test_mass_is_conserved_inside_the_canvas():
    """Bilinear weights sum to one, so patches fully inside keep their sum."""
    patches = rand((2, 5, 4, 4), torch.float64, gen=generator(3))
    positions = fractional_positions((2, 5), 3, 10, gen=generator(4))
    out = reassemble_patches(patches, positions, (14, 14))
    torch.testing.assert_close(out.sum(dim=(-2, -1)), patches.sum(dim=(-3, -2, -1)),
                               rtol=0, atol=1e-12)


def test_patches_fully_outside_are_dropped():
    patches = torch.ones(1, 3, 5, 5)
    positions = torch.tensor([[[-3.0, 3.0], [3.0, 10.0], [-1e6, 1e6]]])
    assert torch.equal(reassemble_patches(patches, positions, (8, 8)), torch.zeros(1, 8, 8))
    # half a pixel closer, the edge row / column gets half of the patch's edge
    edge = reassemble_patches(patches, torch.tensor([[[-2.5, 3.0], [3.0, 9.5], [1e6, 0.0]]]),
                              (8, 8))
    assert edge[0, 0, 1:6].eq(0.5).all() and edge[0, 1:6, 7].eq(0.5).all()


def test_non_square_patch_centre():
    patch = torch.zeros(1, 3, 4)
    patch[0, 1, 2] = 1.0  # the centre pixel (n//2, m//2)
    out = reassemble_patches(patch, torch.tensor([[5.0, 6.0]]), (9, 9))
    assert out[5, 6] == 1.0 and out.sum() == 1.0


def test_conjugate_view_is_accepted():
    patches = rand((2, 3, 3), torch.complex64, gen=generator(5))
    positions = torch.tensor([[2.3, 3.7], [4.1, 1.5]])
    assert torch.equal(reassemble_patches(patches.conj(), positions, (6, 6)),
                       reassemble_patches(patches, positions, (6, 6)).conj())


def test_deterministic_with_many_overlaps():
    patches = rand((1, 64, 8, 8), gen=generator(6))
    positions = torch.rand(1, 64, 2, generator=generator(7)) * 4 + 6
    first = reassemble_patches(patches, positions, (16, 16))
    assert all(torch.equal(first, reassemble_patches(patches, positions, (16, 16)))
               for _ in range(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_work_does_not_scale_with_the_canvas(dtype):
    """Apart from allocating the zero canvas and the one index_add into it, no op touches a
    canvas-sized tensor: the cost is O(patches x n x m). A structural check; timing belongs in
    benchmarks/."""
    patches = rand((2, 4, 5, 5), dtype, gen=generator(8))
    positions = fractional_positions((2, 4), 0, 256, gen=generator(9), dtype=torch.float32)
    touching = ops_touching(reassemble_patches, patches, positions, (256, 256),
                            numel=256 * 256)
    heavy = sorted(name for name in touching if name not in VIEW_OPS)
    assert heavy == ["index_add", "zeros"], touching


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck_patches_and_positions(dtype):
    gen = generator(10)
    patches = rand((2, 3, 4, 3), dtype, gen=gen).requires_grad_()
    positions = fractional_positions((2, 3), -1, 8, gen=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda v, p: reassemble_patches(v, p, (7, 8)),
                                    (patches, positions))


# ---------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_compiled_equals_eager(dtype):
    gen = generator(11)
    patches = rand((2, 3, 4, 5, 5), dtype, gen=gen)
    positions = torch.rand(2, 3, 4, 2, generator=gen) * 12 - 2
    fn = compiled(lambda v, p: reassemble_patches(v, p, (9, 10)))
    expected = reassemble_patches(patches, positions, (9, 10))
    torch.testing.assert_close(fn(patches, positions), expected)


def test_inductor_equals_eager():
    """index_add under the default backend (inductor): values and gradients."""
    gen = generator(12)
    patches = rand((2, 6, 4, 4), gen=gen).requires_grad_()
    positions = fractional_positions((2, 6), 0, 8, gen=gen, dtype=torch.float32).requires_grad_()
    weights = torch.randn(2, 9, 9, generator=gen)

    def loss(v, p):
        return (reassemble_patches(v, p, (9, 9)) * weights).sum()

    torch._dynamo.reset()
    fn = torch.compile(loss, fullgraph=True)
    value = fn(patches, positions)
    torch.testing.assert_close(value, loss(patches, positions))
    grads = torch.autograd.grad(value, (patches, positions))
    expected = torch.autograd.grad(loss(patches, positions), (patches, positions))
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b)


def test_out_accumulates_in_place():
    """Reassembling into ``out`` twice adds twice, with the values of a fresh reassembly,
    and returns ``out`` itself (real and complex)."""
    gen = torch.Generator().manual_seed(5)
    pos = torch.rand(2, 6, 2, generator=gen) * 20 + 4
    for dtype in (torch.float32, torch.complex64):
        patches = torch.randn(2, 6, 8, 8, generator=gen, dtype=dtype)
        fresh = reassemble_patches(patches, pos, (30, 28))
        out = torch.zeros(2, 30, 28, dtype=dtype)
        returned = reassemble_patches(patches, pos, (30, 28), out=out)
        assert returned is out
        reassemble_patches(patches, pos, (30, 28), out=out)
        torch.testing.assert_close(out, 2 * fresh)


@pytest.mark.parametrize("bad", ["shape", "dtype", "strided", "grad"])
def test_out_must_fit(bad):
    patches = torch.randn(1, 3, 8, 8)
    pos = torch.full((1, 3, 2), 10.0)
    out = {"shape": torch.zeros(1, 20, 21), "dtype": torch.zeros(1, 20, 20, dtype=torch.float64),
           "strided": torch.zeros(1, 20, 40)[..., ::2],
           "grad": torch.zeros(1, 20, 20, requires_grad=True)}[bad]
    with pytest.raises(ValueError, match="out"):
        reassemble_patches(patches, pos, (20, 20), out=out)
