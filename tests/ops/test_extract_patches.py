"""Tests of pinn.ops.extract_patches: ``size x size`` bilinear patches whose centre pixel
``(size//2, size//2)`` sits on each position, zero outside the canvas. Adjointness with
reassemble_patches is tested in test_reassemble_patches.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import (FULL_OF, VIEW_OPS, compiled, fractional_positions, generator,
                          ops_touching, positions_strategy, rand)
from pinn.ops import extract_patches, translate


def sliced_patch(canvas: torch.Tensor, y: int, x: int, size: int) -> torch.Tensor:
    """Oracle for integer positions: plain slicing of the zero-padded (H, W) canvas."""
    pad = size + abs(y) + abs(x) + max(canvas.shape)
    padded = torch.zeros(canvas.shape[0] + 2 * pad, canvas.shape[1] + 2 * pad, dtype=canvas.dtype)
    padded[pad:pad + canvas.shape[0], pad:pad + canvas.shape[1]] = canvas
    top, left = pad + y - size // 2, pad + x - size // 2
    return padded[top:top + size, left:left + size]


def grid_sample_patches(canvas: torch.Tensor, positions: torch.Tensor, size: int) -> torch.Tensor:
    """Oracle for any positions: (H, W) real canvas, (P, 2) positions, via grid_sample."""
    height, width = canvas.shape
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    ys = positions[:, 0, None] + offsets  # (P, size)
    xs = positions[:, 1, None] + offsets
    grid = torch.stack(torch.broadcast_tensors(2 * xs[:, None, :] / (width - 1) - 1,
                                               2 * ys[:, :, None] / (height - 1) - 1), dim=-1)
    batch = canvas.double()[None, None].expand(len(positions), 1, height, width)
    out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[:, 0]


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("canvas_shape", "positions_shape", "size", "out_shape"),
    [
        ((9, 10), (4, 2), 3, (4, 3, 3)),
        ((2, 9, 10), (2, 4, 2), 5, (2, 4, 5, 5)),
        ((2, 3, 9, 10), (2, 3, 4, 2), 4, (2, 3, 4, 4, 4)),
        ((2, 9, 10), (2, 1, 2), 1, (2, 1, 1, 1)),
        ((2, 9, 10), (2, 0, 2), 3, (2, 0, 3, 3)),
        ((0, 9, 10), (0, 4, 2), 3, (0, 4, 3, 3)),
        ((6, 6), (2, 2), 16, (2, 16, 16)),
    ],
)
def test_output_shape(canvas_shape, positions_shape, size, out_shape):
    out = extract_patches(torch.randn(canvas_shape), torch.rand(positions_shape) * 9, size)
    assert out.shape == out_shape


def test_each_canvas_is_read_by_its_own_positions():
    canvas = torch.arange(1.0, 4.0)[:, None, None].expand(3, 8, 8)  # canvas b is b + 1
    positions = torch.full((3, 2, 2), 3.5)
    out = extract_patches(canvas, positions, 3)
    for b in range(3):
        assert torch.equal(out[b], torch.full((2, 3, 3), b + 1.0))


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", list(FULL_OF))
def test_output_dtype(dtype):
    out = extract_patches(rand((2, 8, 8), dtype), torch.rand(2, 3, 2) * 8, 4)
    assert out.dtype == FULL_OF[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.complex64])
def test_autocast_keeps_full_precision(dtype):
    canvas = rand((2, 8, 8), dtype, gen=generator(1))
    positions = torch.rand(2, 3, 2, generator=generator(2)) * 8
    expected = extract_patches(canvas.to(FULL_OF[dtype]), positions, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = extract_patches(canvas, positions, 5)
    assert out.dtype == FULL_OF[dtype]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"canvas": [[0.0]]}, TypeError, "canvas must be a torch.Tensor, got list"),
        ({"positions": np.zeros((1, 2))}, TypeError, "positions must be a torch.Tensor"),
        ({"canvas": torch.zeros(8)}, ValueError,
         r"canvas has shape \(8,\); expected \(\.\.\., H, W\)"),
        ({"positions": torch.zeros(4, 3)}, ValueError,
         r"positions has shape \(4, 3\); expected \(\.\.\., P, 2\)"),
        ({"positions": torch.zeros(2)}, ValueError,
         r"positions has shape \(2,\) and canvas \(8, 8\)"),
        ({"canvas": torch.zeros(2, 8, 8), "positions": torch.zeros(3, 4, 2)}, ValueError,
         "same leading dimensions"),
        ({"canvas": torch.zeros(2, 8, 8), "positions": torch.zeros(4, 2)}, ValueError,
         "same leading dimensions"),
        ({"positions": torch.zeros(1, 1, 2)}, ValueError, "same leading dimensions"),
        ({"positions": torch.zeros(1, 2, dtype=torch.int64)}, TypeError, "real floating tensor"),
        ({"positions": torch.tensor([[float("nan"), 1.0]])}, ValueError, "NaN or inf"),
        ({"positions": torch.tensor([[1.0, -float("inf")]])}, ValueError, "NaN or inf"),
        ({"size": 0}, ValueError, "size must be a positive int, got 0"),
        ({"size": -2}, ValueError, "size must be a positive int"),
        ({"size": 2.5}, ValueError, "size must be a positive int, got 2.5"),
        ({"size": None}, ValueError, "size must be a positive int, got None"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"canvas": torch.zeros(8, 8), "positions": torch.zeros(1, 2), "size": 3, **kwargs}
    with pytest.raises(error, match=match):
        extract_patches(**arguments)


# ---------------------------------------------------------------- correctness


@pytest.mark.parametrize("size", [1, 4, 5])
def test_patch_centre_pixel_sits_on_the_position(size):
    canvas = torch.randn(9, 11)
    out = extract_patches(canvas, torch.tensor([[4.0, 7.0], [0.0, 0.0], [8.0, 10.0]]), size)
    c = size // 2
    assert out[0, c, c] == canvas[4, 7]
    assert out[1, c, c] == canvas[0, 0]
    assert out[2, c, c] == canvas[8, 10]


@given(
    height=st.integers(1, 9), width=st.integers(1, 9), size=st.integers(1, 7),
    positions=st.lists(st.tuples(st.integers(-8, 16), st.integers(-8, 16)), min_size=1,
                       max_size=4),
    complex_canvas=st.booleans(), seed=st.integers(0, 2**31 - 1),
)
def test_integer_positions_equal_slicing(height, width, size, positions, complex_canvas, seed):
    """Exact equality with slicing, zeros where the patch hangs over the canvas edge."""
    dtype = torch.complex64 if complex_canvas else torch.float32
    canvas = rand((height, width), dtype, gen=generator(seed))
    out = extract_patches(canvas, torch.tensor(positions, dtype=torch.float32), size)
    for k, (y, x) in enumerate(positions):
        assert torch.equal(out[k], sliced_patch(canvas, y, x, size))


@given(
    height=st.integers(2, 9), width=st.integers(2, 9), size=st.integers(1, 6),
    data=st.data(), seed=st.integers(0, 2**31 - 1),
)
def test_equals_grid_sample_oracle(height, width, size, data, seed):
    positions = data.draw(positions_strategy(3, height, width, margin=size))
    canvas = rand((height, width), torch.float64, gen=generator(seed))
    torch.testing.assert_close(extract_patches(canvas, positions, size),
                               grid_sample_patches(canvas, positions, size),
                               rtol=1e-12, atol=1e-12)


@given(data=st.data(), size=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_equals_translate_then_crop_top_left(data, size, seed):
    """extract(c, p, s) is c translated by (s//2 - p) and cut at the top-left corner."""
    canvas = rand((2, 7, 8), torch.float64, gen=generator(seed))
    positions = data.draw(positions_strategy(2, 7, 8, margin=size)).reshape(2, 1, 2)
    out = extract_patches(canvas, positions, size)  # (2, 1, s, s)
    moved = translate(canvas, size // 2 - positions[:, 0])  # (2, 7, 8)
    s = min(size, 7)
    torch.testing.assert_close(out[:, 0, :s, :s], moved[:, :s, :s], rtol=0, atol=1e-12)


def test_patches_fully_outside_are_zero():
    canvas = torch.randn(2, 6, 6) + 10
    positions = torch.tensor([[[-3.6, 2.0], [2.0, 8.6]], [[9.0, 9.0], [-100.5, 3e4]]])
    assert torch.equal(extract_patches(canvas, positions, 5), torch.zeros(2, 2, 5, 5))
    touching = extract_patches(canvas, torch.tensor([[[-2.5, 2.0]], [[3.0, 7.5]]]), 5)
    assert (touching != 0).sum() == 2 * 5  # one row / column of half-weighted edge pixels


def test_constant_canvas_gives_constant_patches_inside():
    """Bilinear weights sum to one: inside the canvas a constant is reproduced exactly."""
    positions = fractional_positions((1, 6), 3, 8, gen=generator(3))
    out = extract_patches(torch.full((1, 12, 12), 2.5, dtype=torch.float64), positions, 5)
    torch.testing.assert_close(out, torch.full_like(out, 2.5), rtol=0, atol=1e-14)


def test_conjugate_view_is_accepted():
    canvas = rand((6, 6), torch.complex64, gen=generator(4))
    positions = torch.tensor([[2.3, 3.7]])
    assert torch.equal(extract_patches(canvas.conj(), positions, 3),
                       extract_patches(canvas, positions, 3).conj())


def test_work_does_not_scale_with_the_canvas():
    """No op computes over the whole canvas: it is only viewed, and read by one index_select
    of the rows under the patches (a structural check; timing belongs in benchmarks/)."""
    canvas = torch.randn(2, 256, 256)
    positions = fractional_positions((2, 4), 0, 256, gen=generator(5), dtype=torch.float32)
    touching = ops_touching(extract_patches, canvas, positions, 5, numel=256 * 256)
    heavy = [name for name in touching if name not in VIEW_OPS]
    assert heavy == ["index_select"], touching


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck_canvas_and_positions(dtype):
    gen = generator(6)
    canvas = rand((2, 7, 8), dtype, gen=gen).requires_grad_()
    positions = fractional_positions((2, 3), -2, 9, gen=gen).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, p: extract_patches(c, p, 4), (canvas, positions))


# ---------------------------------------------------------------- torch.compile


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_compiled_equals_eager(dtype):
    gen = generator(7)
    canvas = rand((2, 3, 10, 9), dtype, gen=gen)
    positions = torch.rand(2, 3, 4, 2, generator=gen) * 14 - 2
    fn = compiled(lambda c, p: extract_patches(c, p, 5))
    torch.testing.assert_close(fn(canvas, positions), extract_patches(canvas, positions, 5))
