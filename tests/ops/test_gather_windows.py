"""Tests of pinn.ops.gather_windows: integer windows by slicing, the scatter-add backward."""

from __future__ import annotations

import pytest
import torch

from _ops_helpers import generator, rand
from pinn.ops import gather_windows


def indexed(canvas: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Oracle: advanced indexing (autograd's index / index_put backward)."""
    steps = torch.arange(size)
    rows = corners[:, 0, None] + steps
    cols = corners[:, 1, None] + steps
    return canvas[rows[:, :, None], cols[:, None, :]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64, torch.complex128])
def test_windows_and_their_gradient_are_advanced_indexings(dtype):
    gen = generator(0)
    canvas = rand((40, 37), dtype, gen)
    corners = torch.tensor([[0, 0], [3, 5], [3, 5], [24, 21], [10, 2]])  # repeats overlap
    grad = rand((5, 16, 16), dtype, gen)
    mine = canvas.clone().requires_grad_()
    theirs = canvas.clone().requires_grad_()
    out = gather_windows(mine, corners, 16)
    expected = indexed(theirs, corners, 16)
    assert out.dtype == dtype and out.shape == (5, 16, 16)
    assert torch.equal(out, expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-6, atol=1e-6)
    assert mine.grad[:10, 21:].abs().max() == 0  # nothing outside the windows


def test_gradcheck():
    canvas = rand((12, 11), torch.complex128, generator(1)).requires_grad_()
    corners = torch.tensor([[0, 1], [2, 3], [6, 5]])
    assert torch.autograd.gradcheck(lambda c: gather_windows(c, corners, 6), (canvas,))


def test_the_gradient_is_the_same_every_run():
    gen = generator(2)
    canvas = rand((64, 64), torch.float32, gen).requires_grad_()
    corners = torch.randint(0, 32, (50, 2), generator=gen)
    grad = rand((50, 32, 32), torch.float32, gen)
    grads = []
    for _ in range(2):
        canvas.grad = None
        gather_windows(canvas, corners, 32).backward(grad)
        grads.append(canvas.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_bad_arguments_are_clear_errors():
    canvas = torch.zeros(10, 10)
    with pytest.raises(ValueError, match=r"window at corner \(5, 0\) leaves the 10 x 10"):
        gather_windows(canvas, torch.tensor([[0, 0], [5, 0]]), 6)
    with pytest.raises(ValueError, match="leaves"):
        gather_windows(canvas, torch.tensor([[-1, 0]]), 4)
    with pytest.raises(TypeError, match="integer"):
        gather_windows(canvas, torch.zeros(1, 2), 4)
    with pytest.raises(ValueError, match=r"expected \(B, 2\)"):
        gather_windows(canvas, torch.zeros(2, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match=r"expected \(H, W\)"):
        gather_windows(torch.zeros(2, 10, 10), torch.zeros(1, 2, dtype=torch.int64), 4)
    assert gather_windows(canvas, torch.zeros(0, 2, dtype=torch.int64), 4).shape == (0, 4, 4)
