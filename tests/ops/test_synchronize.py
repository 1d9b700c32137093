"""Phase synchronisation of overlapping patches (``pinn.ops.phase_offsets``)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pinn import ops
from tests.ops._ops_helpers import generator


def _smooth_object(size: int, gen: torch.Generator) -> torch.Tensor:
    """A smooth complex object with a phase range of about 2 rad."""
    noise = torch.randn(2, size, size, generator=gen, dtype=torch.float64)
    amplitude, phase = ops.gaussian_blur(noise, 3.0) * 4
    return ((0.8 + 0.1 * amplitude) * torch.exp(1j * phase)).to(torch.complex128)


def _raster(count: int, step: float, margin: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(count), torch.arange(count), indexing="ij")
    return torch.stack([ys, xs], dim=-1).reshape(-1, 2).to(torch.float64) * step + margin


def _patches(obj, positions, n, offsets):
    """Windows of ``obj`` at ``positions``, each times exp(i offset), with Gaussian weights."""
    windows = ops.extract_patches(obj[None], positions[None], n)[0]
    taper = torch.exp(-((torch.arange(n) - n // 2) / (n / 4)) ** 2).to(torch.float64)
    weights = (taper[:, None] * taper[None, :]).expand(len(positions), n, n).contiguous()
    return windows * torch.exp(1j * offsets)[:, None, None], weights


def _relative(phi, truth):
    """Offsets modulo 2 pi, with the common constant removed (the one freedom left)."""
    diff = torch.angle(torch.exp(1j * (phi - truth)))
    return torch.angle(torch.exp(1j * (diff - torch.angle(torch.exp(1j * diff).mean()))))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), spread=st.floats(0.3, 3.0))
def test_the_offsets_given_to_consistent_patches_are_found(seed, spread):
    """Windows of one object, each rotated by its own constant: the rounds find the
    constants, up to one common constant."""
    gen = generator(seed)
    n = 16
    positions = _raster(6, 5.0, 10.0)
    obj = _smooth_object(48, gen)
    truth = (torch.rand(len(positions), generator=gen, dtype=torch.float64) - 0.5) * 2 * spread
    patches, weights = _patches(obj, positions, n, truth)
    phi = ops.phase_offsets(patches, positions, (48, 48), weights, rounds=200)
    assert _relative(phi, truth).abs().max() < 1e-3
    # and stitching the synchronised patches gives back the object where it is well covered
    synced = patches * torch.exp(-1j * phi)[:, None, None]
    image, coverage = ops.stitch(synced[None], positions[None], (48, 48), weights=weights[None])
    inner = coverage[0] > 0.5 * coverage.max()
    ratio = image[0][inner] / obj[inner]
    torch.testing.assert_close(ratio / ratio.mean(), torch.ones_like(ratio), rtol=0, atol=1e-3)


def test_synchronising_makes_the_stitch_closer_to_the_object():
    """With random constants the plain stitch smears the phase; a few rounds repair it."""
    gen = generator(7)
    n = 16
    positions = _raster(6, 5.0, 10.0)
    obj = _smooth_object(48, gen)
    truth = (torch.rand(len(positions), generator=gen, dtype=torch.float64) - 0.5) * 4
    patches, weights = _patches(obj, positions, n, truth)

    def error(phi):
        synced = patches * torch.exp(-1j * phi)[:, None, None]
        image, coverage = ops.stitch(synced[None], positions[None], (48, 48),
                                     weights=weights[None])
        inner = coverage[0] > 0.5 * coverage.max()
        ratio = image[0][inner] / obj[inner]
        return float((ratio / ratio.mean() - 1).abs().mean())

    errors = [error(ops.phase_offsets(patches, positions, (48, 48), weights, rounds=k))
              for k in (0, 2, 8, 200)]
    assert errors[0] > 0.2 and errors[-1] < 1e-3
    assert errors == sorted(errors, reverse=True), errors


def test_zero_rounds_and_agreeing_patches_give_zero():
    gen = generator(3)
    positions = _raster(4, 5.0, 10.0)
    patches, weights = _patches(_smooth_object(40, gen), positions, 16,
                                torch.zeros(len(positions), dtype=torch.float64))
    assert torch.equal(ops.phase_offsets(patches, positions, (40, 40), weights, 0),
                       torch.zeros(len(positions), dtype=torch.float64))
    phi = ops.phase_offsets(patches, positions, (40, 40), weights, 5)
    assert phi.abs().max() < 1e-9


def test_the_mean_phase_is_kept():
    """The weighted mean of the offsets is 0: a patch set rotated as a whole is left so."""
    gen = generator(4)
    positions = _raster(4, 5.0, 10.0)
    patches, weights = _patches(_smooth_object(40, gen), positions, 16,
                                torch.full((len(positions),), 1.0, dtype=torch.float64))
    phi = ops.phase_offsets(patches, positions, (40, 40), weights, 5)
    assert phi.abs().max() < 1e-9


def test_precision_and_range():
    gen = generator(5)
    positions = _raster(3, 5.0, 10.0).float()
    patches, weights = _patches(_smooth_object(36, gen), positions.double(), 16,
                                torch.rand(9, generator=gen, dtype=torch.float64) * 6)
    phi = ops.phase_offsets(patches.to(torch.complex64), positions, (36, 36),
                            weights.float(), 3)
    assert phi.dtype == torch.float32 and phi.shape == (9,)
    assert bool((phi.abs() <= math.pi).all())


@pytest.mark.parametrize("call,message", [
    (lambda p, x, w: ops.phase_offsets(p.real, x, (30, 30), w.real, 1), "complex"),
    (lambda p, x, w: ops.phase_offsets(p, x, (30, 30), w[:, :8], 1), "weights"),
    (lambda p, x, w: ops.phase_offsets(p, x, (30, 30), w, -1), "rounds is -1"),
    (lambda p, x, w: ops.phase_offsets(p, x, (30, 30), w, 1.5), "rounds is 1.5"),
    (lambda p, x, w: ops.phase_offsets(p, x[:3], (30, 30), w, 1), "positions"),
    (lambda p, x, w: ops.phase_offsets(p, x, (30,), w, 1), "canvas_shape"),
])
def test_bad_input_is_named(call, message):
    patches = torch.ones(4, 16, 16, dtype=torch.complex64)
    positions = torch.full((4, 2), 12.0)
    weights = torch.ones(4, 16, 16)
    with pytest.raises((ValueError, TypeError), match=message):
        call(patches, positions, weights)
