"""Modulus projection of group canvases (``pinn.ops.project_amplitudes``)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinn import ops
from pinn.ops.modes import far_field_amplitude
from pinn.ops.project import project_amplitudes
from tests.ops._ops_helpers import fractional_positions, generator, rand


def _misfit(canvas, positions, modes, amplitude, mask=None):
    """``0.5 * sum (|F psi| - amplitude)**2`` over every pattern of every canvas."""
    n = modes.shape[-1]
    waves = ops.extract_patches(canvas, positions, n)[:, :, None] * modes
    if mask is not None:
        waves = waves * mask
    return 0.5 * (far_field_amplitude(waves) - amplitude).square().sum()


def _problem(batch=2, count=4, k=2, n=8, size=14, seed=0, dtype=torch.complex128):
    """Random canvases, probe modes and positions inside the canvas, and the amplitudes of
    another random object: a start that does not fit its data."""
    gen = generator(seed)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    canvas = rand((batch, size, size), dtype, gen)
    truth = rand((batch, size, size), dtype, gen)
    modes = rand((k, n, n), dtype, gen)
    positions = fractional_positions((batch, count), n // 2, size - n // 2, gen, dtype=real)
    waves = ops.extract_patches(truth, positions, n)[:, :, None] * modes
    return canvas, truth, positions, modes, far_field_amplitude(waves)


def test_zero_steps_return_the_canvas():
    canvas, _, positions, modes, amplitude = _problem()
    assert project_amplitudes(canvas, positions, modes, amplitude, 0) is canvas


@pytest.mark.parametrize("k", [1, 3])
def test_a_step_is_the_preconditioned_gradient_step(k):
    """canvas - grad / (w + r max w), the gradient of the amplitude misfit by autograd (whose
    complex gradient is 2 d/d conj(z)) and w the reassembled probe power."""
    canvas, _, positions, modes, amplitude = _problem(k=k)
    leaf = canvas.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(_misfit(leaf, positions, modes, amplitude), leaf)
    power = modes.abs().square().sum(dim=0).expand(*positions.shape[:2], -1, -1)
    weight = ops.reassemble_patches(power, positions, canvas.shape[-2:])
    weight = weight + 0.05 * weight.amax(dim=(-2, -1), keepdim=True)
    stepped = project_amplitudes(canvas, positions, modes, amplitude, 1)
    torch.testing.assert_close(stepped, canvas - gradient / weight, rtol=1e-9, atol=1e-9)
    relaxed = project_amplitudes(canvas, positions, modes, amplitude, 1, step_size=1.5)
    torch.testing.assert_close(relaxed, canvas - 1.5 * gradient / weight, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 3), count=st.integers(1, 4),
       regularization=st.sampled_from([0.0, 0.05, 1.0]),
       step_size=st.sampled_from([0.5, 1.0, 1.5, 1.95]))
def test_the_misfit_never_increases(seed, k, count, regularization, step_size):
    canvas, _, positions, modes, amplitude = _problem(count=count, k=k, seed=seed)
    before = _misfit(canvas, positions, modes, amplitude)
    for _ in range(3):
        canvas = project_amplitudes(canvas, positions, modes, amplitude, 1,
                                    step_size=step_size, regularization=regularization)
        after = _misfit(canvas, positions, modes, amplitude)
        assert after <= before * (1 + 1e-9)
        before = after


def test_steps_fit_the_data():
    """Many overlapping patterns pin the object down: 300 steps cut the misfit 100-fold."""
    canvas, _, positions, modes, amplitude = _problem(batch=1, count=16, k=1, n=8, size=12)
    start = _misfit(canvas, positions, modes, amplitude)
    fitted = project_amplitudes(canvas, positions, modes, amplitude, 300)
    assert _misfit(fitted, positions, modes, amplitude) < start / 100


def test_the_true_object_is_a_fixed_point():
    _, truth, positions, modes, amplitude = _problem(dtype=torch.complex64)
    out = project_amplitudes(truth, positions, modes, amplitude.float(), 5)
    torch.testing.assert_close(out, truth, rtol=1e-4, atol=1e-4)


def test_unlit_pixels_keep_their_values():
    canvas, _, positions, modes, amplitude = _problem(batch=1, count=1, size=20)
    positions = torch.full_like(positions, 6.0)  # the 8 x 8 window covers rows / cols 2..9
    out = project_amplitudes(canvas, positions, modes, amplitude, 2)
    assert torch.equal(out[:, 12:, :], canvas[:, 12:, :])
    assert torch.equal(out[:, :, 12:], canvas[:, :, 12:])
    assert not torch.equal(out[:, 2:10, 2:10], canvas[:, 2:10, 2:10])


def test_a_mask_acts_as_part_of_the_probe():
    canvas, _, positions, modes, amplitude = _problem()
    mask = ops.disk_mask(8).double()
    torch.testing.assert_close(project_amplitudes(canvas, positions, modes, amplitude, 2, mask),
                               project_amplitudes(canvas, positions, modes * mask, amplitude, 2))


def test_single_mode_layouts_agree_and_precision_is_float32():
    canvas, _, positions, modes, amplitude = _problem(k=1, dtype=torch.complex64)
    amplitude = amplitude.float()
    out = project_amplitudes(canvas, positions, modes[0], amplitude, 2)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, project_amplitudes(canvas, positions, modes, amplitude, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert project_amplitudes(canvas, positions, modes, amplitude, 1).dtype == torch.complex64


def test_gradients_reach_every_input():
    canvas, _, positions, modes, amplitude = _problem(batch=1, count=2, k=1, n=6, size=10)
    inputs = [canvas.requires_grad_(), modes.requires_grad_(), amplitude.requires_grad_()]
    assert torch.autograd.gradcheck(
        lambda c, m, a: project_amplitudes(c, positions, m, a, 2), inputs)


@pytest.mark.parametrize("call, message", [
    (lambda c, p, m, a: project_amplitudes(c, p, m, a, -1), "steps"),
    (lambda c, p, m, a: project_amplitudes(c, p, m, a, 1.5), "steps"),
    (lambda c, p, m, a: project_amplitudes(c, p, m, a, 1, regularization=-1), "regularization"),
    (lambda c, p, m, a: project_amplitudes(c, p, m, a, 1, step_size=2.0), "step_size"),
    (lambda c, p, m, a: project_amplitudes(c, p, m, a, 1, step_size=0.0), "step_size"),
    (lambda c, p, m, a: project_amplitudes(c[0], p, m, a, 1), "canvas"),
    (lambda c, p, m, a: project_amplitudes(c, p, m, a[:, :1], 1), "amplitude"),
    (lambda c, p, m, a: project_amplitudes(c, p, m[..., :4], a, 1), "modes"),
])
def test_bad_input_is_named(call, message):
    canvas, _, positions, modes, amplitude = _problem()
    with pytest.raises(ValueError, match=message):
        call(canvas, positions, modes, amplitude)
