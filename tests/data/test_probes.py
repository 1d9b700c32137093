"""Synthetic probes: the reference default, Gaussian and ring probes."""

from __future__ import annotations

import math

import pytest
import torch

from pinn.data import make_probe
from pinn.data.probes import gaussian_probe, ring_probe
from pinn.errors import ConfigError
from pinn.ops import default_probe


def test_default_probe_is_the_reference_probe():
    assert torch.equal(make_probe("default", 32), default_probe(32))


def test_gaussian_probe():
    probe = gaussian_probe(32, sigma_px=3.0)
    assert probe.shape == (32, 32) and probe.dtype == torch.complex64
    amplitude = probe.real.double()
    assert float(probe.imag.abs().max()) == 0.0
    assert divmod(int(amplitude.argmax()), 32) == (16, 16) and float(amplitude.max()) == 1.0
    assert float(amplitude[16, 19]) == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert float(amplitude[13, 16]) == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert torch.equal(make_probe("gaussian", 32), gaussian_probe(32, sigma_px=4.0))


def test_ring_probe_is_an_annulus_with_quadratic_phase():
    probe = ring_probe(64, outer_radius_px=20, inner_radius_px=8, edge_phase_rad=2.0)
    assert probe.dtype == torch.complex64
    amplitude = probe.abs()
    assert float(amplitude[32, 32]) < 1e-3  # dark centre (central stop)
    assert float(amplitude[32, 32 + 14]) == pytest.approx(1.0, abs=1e-6)  # on the ring
    assert float(amplitude[0, 0]) < 1e-6  # dark outside
    assert float(amplitude.max()) <= 1.0 + 1e-6
    for r in (10, 14, 18):
        expected = 2.0 * (r / 20) ** 2
        assert float(probe[32, 32 + r].angle()) == pytest.approx(expected, abs=1e-5)
        assert float(probe[32 - r, 32].angle()) == pytest.approx(expected, abs=1e-5)


def test_probe_errors():
    with pytest.raises(ConfigError, match="kind"):
        make_probe("airy", 32)
    with pytest.raises(ConfigError, match="radii"):
        ring_probe(32, outer_radius_px=5, inner_radius_px=6)
    with pytest.raises(ConfigError, match="sigma_px"):
        gaussian_probe(32, sigma_px=0)
    with pytest.raises(ConfigError, match="size"):
        make_probe("ring", -4)
