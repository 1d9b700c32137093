"""Tests of the data-fit terms in pinn.ops.likelihood: poisson_nll (``pred - k log pred``, the
reference's loss), poisson_deviance (``2 (pred - k + k log(k / pred))``) and amplitude_mae."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _ops_helpers import compiled, generator
from pinn.ops import amplitude_mae, poisson_deviance, poisson_nll

TERMS = [poisson_nll, poisson_deviance, amplitude_mae]

counts = st.one_of(st.just(0.0), st.floats(1e-3, 10.0), st.floats(10.0, 1e7))
positive = st.floats(1e-3, 1e7)


def reference_deviance(pred: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    pred, measured = pred.double(), measured.double()
    return 2 * (pred - measured + torch.xlogy(measured, measured / pred))


# ---------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize("term", TERMS)
def test_elementwise_and_broadcasting(term):
    pred = torch.rand(2, 3, 4, 4) + 0.5
    measured = torch.rand(4, 4) * 2
    out = term(pred, measured)
    assert out.shape == (2, 3, 4, 4)
    torch.testing.assert_close(out[1, 2], term(pred[1, 2], measured), rtol=0, atol=0)


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize(
    ("pred_dtype", "measured_dtype", "out_dtype"),
    [(torch.float32, torch.float32, torch.float32), (torch.float64, torch.float64, torch.float64),
     (torch.bfloat16, torch.float32, torch.float32),
     (torch.bfloat16, torch.bfloat16, torch.float32),
     (torch.float16, torch.int64, torch.float32), (torch.float32, torch.int64, torch.float32),
     (torch.float64, torch.int32, torch.float64)],
)
def test_output_dtype(term, pred_dtype, measured_dtype, out_dtype):
    pred = (torch.rand(3, 5) + 0.5).to(pred_dtype)
    measured = torch.randint(0, 5, (3, 5)).to(measured_dtype)
    assert term(pred, measured).dtype == out_dtype


@pytest.mark.parametrize("term", TERMS)
def test_autocast_keeps_full_precision(term):
    layer = torch.nn.Linear(4, 4)
    measured = torch.randint(0, 5, (3, 4)).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = layer(torch.randn(3, 4)).exp()
        assert pred.dtype == torch.bfloat16
        out = term(pred, measured)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, term(pred.float(), measured), rtol=0, atol=0)


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize(
    ("pred", "measured", "error", "match"),
    [
        (np.ones(3), torch.ones(3), TypeError, "pred must be a torch.Tensor, got ndarray"),
        (torch.ones(3), [1.0, 1.0, 1.0], TypeError, "measured must be a torch.Tensor, got list"),
        (torch.ones(3, dtype=torch.complex64), torch.ones(3), TypeError, "must be real"),
        (torch.ones(3), torch.ones(3, dtype=torch.complex64), TypeError, "must be real"),
    ],
)
def test_bad_arguments_raise(term, pred, measured, error, match):
    with pytest.raises(error, match=match):
        term(pred, measured)


# ---------------------------------------------------------------- poisson_nll


@given(pred=st.lists(positive, min_size=1, max_size=8), data=st.data())
def test_nll_is_pred_minus_k_log_pred(pred, data):
    measured = data.draw(st.lists(counts, min_size=len(pred), max_size=len(pred)))
    p = torch.tensor(pred, dtype=torch.float64)
    k = torch.tensor(measured, dtype=torch.float64)
    torch.testing.assert_close(poisson_nll(p, k), p - k * torch.log(p), rtol=1e-13, atol=1e-13)


def test_nll_at_zero_counts_is_pred_with_a_finite_gradient():
    pred = torch.tensor([0.0, 1e-30, 0.5, 3.0], requires_grad=True)
    out = poisson_nll(pred, torch.zeros(4))
    assert torch.equal(out, pred.detach())
    out.sum().backward()
    assert torch.equal(pred.grad, torch.ones(4))


def test_nll_gradient_is_one_minus_k_over_pred_and_vanishes_at_pred_equal_k():
    pred = torch.tensor([0.5, 2.0, 7.0, 7.0], dtype=torch.float64, requires_grad=True)
    measured = torch.tensor([1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    poisson_nll(pred, measured).sum().backward()
    torch.testing.assert_close(pred.grad, 1 - measured / pred.detach())
    assert pred.grad[1] == 0


def test_nll_is_minimal_at_pred_equal_k():
    k = torch.tensor(12.0, dtype=torch.float64)
    grid = torch.linspace(1, 30, 2901, dtype=torch.float64)
    assert grid[poisson_nll(grid, k).argmin()].item() == pytest.approx(12.0)


# ---------------------------------------------------------------- poisson_deviance


@given(data=st.data(), pred=st.lists(positive, min_size=1, max_size=8))
def test_deviance_matches_the_formula_in_double(data, pred):
    measured = data.draw(st.lists(counts, min_size=len(pred), max_size=len(pred)))
    p = torch.tensor(pred, dtype=torch.float64)
    k = torch.tensor(measured, dtype=torch.float64)
    expected = reference_deviance(p, k)
    torch.testing.assert_close(poisson_deviance(p, k), expected, rtol=1e-9,
                               atol=1e-9 * (1 + (p - k).abs().max().item()))


@given(measured=st.lists(counts, min_size=1, max_size=8),
       ulps=st.lists(st.integers(-64, 64), min_size=8, max_size=8),
       relative=st.lists(st.floats(-0.5, 0.5), min_size=8, max_size=8),
       double=st.booleans())
def test_deviance_is_non_negative_and_accurate_near_a_perfect_fit(measured, ulps, relative,
                                                                  double):
    """>= 0 also in float32 for large counts, where pred and k differ by a few ulps (the
    naive k log k - k log pred cancels catastrophically there); the error stays within
    ~1e-6 of |pred - k| of the double-precision value for the same float32 inputs."""
    dtype = torch.float64 if double else torch.float32
    k = torch.tensor(measured, dtype=dtype)
    n = len(measured)
    near = k * (1 + torch.tensor(relative[:n], dtype=dtype) * 1e-5)
    steps = torch.tensor(ulps[:n])
    up, down = torch.tensor(np.inf, dtype=dtype), torch.tensor(-np.inf, dtype=dtype)
    for _ in range(64):  # walk a few ulps away from pred == k
        near = torch.where(steps > 0, torch.nextafter(near, up), near)
        near = torch.where(steps < 0, torch.nextafter(near, down), near)
        steps = steps - steps.sign()
    pred = near.clamp_min(torch.finfo(dtype).tiny)
    out = poisson_deviance(pred, k)
    assert (out >= 0).all(), out
    expected = reference_deviance(pred, k)
    tolerance = 2e-6 * (1 + (pred.double() - k.double()).abs()) + 1e-6 * expected
    assert ((out.double() - expected).abs() <= tolerance).all(), (out, expected)


@given(pred=st.lists(positive, min_size=1, max_size=8), data=st.data())
def test_deviance_is_non_negative_for_any_pair(pred, data):
    measured = data.draw(st.lists(counts, min_size=len(pred), max_size=len(pred)))
    out = poisson_deviance(torch.tensor(pred), torch.tensor(measured))
    assert (out >= 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deviance_is_zero_at_a_perfect_fit(dtype):
    k = torch.tensor([0.0, 1e-3, 1.0, 7.0, 1e4, 3e6, 1e9], dtype=dtype)
    assert torch.equal(poisson_deviance(k, k), torch.zeros_like(k))


def test_deviance_is_finite_for_predictions_far_below_the_counts():
    """In float32 (pred - k) / k rounds to -1 when pred << k; log1p(-1) would make it inf."""
    pred = torch.tensor([1e-3, 1e-2, 0.5, 1.0])
    k = torch.tensor([1e7, 1e6, 3e7, 1e5])
    out = poisson_deviance(pred, k)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), reference_deviance(pred, k), rtol=1e-6, atol=0)


def test_deviance_reproduces_the_float32_regression():
    """2 (p - k + k log k - k log p) gave -8.0 here in float32 (exact value 3.3e-7)."""
    k = torch.tensor([3e6])
    pred = k * (1 + 3e-7)
    out = poisson_deviance(pred, k)
    assert 0 <= out.item() < 1e-5


def test_deviance_is_about_one_per_pixel_at_the_shot_noise_floor():
    rate = torch.full((20000,), 500.0, dtype=torch.float64)
    measured = torch.poisson(rate, generator=generator(1))
    assert poisson_deviance(rate, measured).mean().item() == pytest.approx(1.0, abs=0.05)


def test_deviance_gradients_at_zero_counts_and_at_a_perfect_fit():
    pred = torch.tensor([0.5, 4.0, 2.0], dtype=torch.float64, requires_grad=True)
    measured = torch.tensor([0.0, 4.0, 1.0], dtype=torch.float64)
    poisson_deviance(pred, measured).sum().backward()
    expected = 2 * (1 - measured / pred.detach())
    torch.testing.assert_close(pred.grad, expected)
    assert pred.grad[0] == 2 and pred.grad[1] == 0


# ---------------------------------------------------------------- amplitude_mae


@given(values=st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=1,
                       max_size=8))
def test_amplitude_mae_is_the_absolute_difference(values):
    pred = torch.tensor([v[0] for v in values], dtype=torch.float64)
    measured = torch.tensor([v[1] for v in values], dtype=torch.float64)
    assert torch.equal(amplitude_mae(pred, measured), (pred - measured).abs())


# ---------------------------------------------------------------- gradients and compile


@pytest.mark.parametrize("term", TERMS)
def test_gradcheck_pred_and_measured(term):
    gen = generator(2)
    pred = (torch.rand(3, 4, generator=gen, dtype=torch.float64) * 5 + 0.5).requires_grad_()
    measured = (torch.rand(3, 4, generator=gen, dtype=torch.float64) * 5 + 0.1)
    measured = (measured + (measured - pred.detach()).sign() * 0.2).requires_grad_()  # pred != k
    assert torch.autograd.gradcheck(term, (pred, measured))


@pytest.mark.parametrize("term", TERMS)
def test_compiled_equals_eager(term):
    gen = generator(3)
    pred = torch.rand(2, 8, 8, generator=gen) * 10 + 0.1
    measured = torch.poisson(torch.rand(2, 8, 8, generator=gen) * 10, generator=gen)
    torch.testing.assert_close(compiled(term)(pred, measured), term(pred, measured))
