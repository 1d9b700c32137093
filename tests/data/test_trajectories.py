"""Scan trajectories for simulation: raster, spiral, random, and their bounds."""

from __future__ import annotations

import pytest
import torch

from pinn.data import make_positions
from pinn.data.trajectories import raster_positions, scan_bounds, spiral_positions
from pinn.errors import ConfigError
from pinn.ops import extract_patches


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
