"""Synthetic probes and scan trajectories."""

from __future__ import annotations

import math

import pytest
import torch

from pinn.data import make_positions, make_probe
from pinn.data.probes import gaussian_probe, ring_probe
from pinn.data.scans import raster_positions, scan_bounds, spiral_positions
from pinn.errors import ConfigError
from pinn.ops import default_probe, extract_patches

# ----------------------------------------------------------------------------- probes


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


# ----------------------------------------------------------------------------- scans


def test_scan_bounds():
    low, high = scan_bounds((100, 80), 32)
    assert low.tolist() == [16.0, 16.0] and high.tolist() == [84.0, 64.0]
    low, high = scan_bounds((33, 33), 33)
    assert low.tolist() == high.tolist() == [16.0, 16.0]
    with pytest.raises(ConfigError, match="smaller"):
        scan_bounds((20, 40), 32)


@pytest.mark.parametrize("kind", ["raster", "spiral", "random"])
def test_every_window_lies_inside_the_object(kind):
    shape, n = (96, 80), 32
    positions = make_positions(kind, shape, n, 50, seed=3, jitter_px=2.0)
    assert positions.shape == (50, 2) and positions.dtype == torch.float64
    low, high = scan_bounds(shape, n)
    assert bool(((positions >= low) & (positions <= high)).all())
    ones = torch.ones(1, *shape, dtype=torch.float64)
    patches = extract_patches(ones, positions[None], n)  # a window reaching outside reads zeros
    torch.testing.assert_close(patches, torch.ones_like(patches), rtol=0, atol=1e-12)


def test_windows_at_the_bounds_touch_the_edges():
    shape, n = (50, 40), 16
    low, high = scan_bounds(shape, n)
    image = torch.arange(50 * 40, dtype=torch.float64).reshape(1, 50, 40)
    patch = extract_patches(image, torch.stack([low, high])[None], n)[0]
    assert float(patch[0, 0, 0]) == 0.0  # top-left window starts at pixel (0, 0)
    assert float(patch[1, -1, -1]) == 50 * 40 - 1  # bottom-right window ends at the last pixel


def test_raster_is_a_regular_grid():
    positions = raster_positions((64 + 32, 64 + 32), 32, 25)
    ys, xs = positions[:, 0].unique(), positions[:, 1].unique()
    assert ys.tolist() == [16.0, 32.0, 48.0, 64.0, 80.0] and torch.equal(xs, ys)
    assert positions[:5, 0].tolist() == [16.0] * 5  # row-major
    partial = raster_positions((96, 96), 32, 7)
    assert partial.shape == (7, 2)


def test_raster_jitter_is_seeded_and_bounded():
    a = raster_positions((96, 96), 32, 25, jitter_px=3.0, seed=1)
    b = raster_positions((96, 96), 32, 25, jitter_px=3.0, seed=1)
    c = raster_positions((96, 96), 32, 25, jitter_px=3.0, seed=2)
    grid = raster_positions((96, 96), 32, 25)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.5 < float((a - grid).std()) < 5
    with pytest.raises(ConfigError, match="jitter_px"):
        raster_positions((96, 96), 32, 25, jitter_px=-1.0)
    with pytest.raises(ConfigError, match="jitter_px must be finite"):
        raster_positions((96, 96), 32, 25, jitter_px=float("inf"))


def test_spiral_is_deterministic_and_spread():
    a = spiral_positions((200, 200), 32, 300)
    assert torch.equal(a, spiral_positions((200, 200), 32, 300))
    centre = torch.tensor([100.0, 100.0], dtype=torch.float64)
    radius = (a - centre).norm(dim=1)
    assert float(radius.max()) <= 84 + 1e-9
    assert int((radius < 42).sum()) == pytest.approx(75, abs=3)  # a quarter of the area
    assert float(torch.cdist(a, a).add(torch.eye(300, dtype=torch.float64) * 1e9).min()) > 5


def test_random_positions_are_seeded():
    a = make_positions("random", (100, 100), 32, 40, seed=5)
    assert torch.equal(a, make_positions("random", (100, 100), 32, 40, seed=5))
    assert not torch.equal(a, make_positions("random", (100, 100), 32, 40, seed=6))


def test_scan_errors():
    with pytest.raises(ConfigError, match="scan kind"):
        make_positions("zigzag", (100, 100), 32, 10)
    with pytest.raises(ConfigError, match="n_scans"):
        make_positions("random", (100, 100), 32, 0)
