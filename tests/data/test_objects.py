"""Synthetic objects and the Gaussian filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pinn.data import make_object
from pinn.data.objects import (
    blobs_object,
    gaussian_filter,
    grf_object,
    lines_object,
    object_from_image,
    siemens_object,
    tanh_phase,
)
from pinn.errors import ConfigError, DataError


def reference_gaussian_filter(image: np.ndarray, sigma: float, truncate: float = 4.0):
    """scipy.ndimage.gaussian_filter(mode='reflect') restated with NumPy, axis by axis."""
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        padded = out
        while padded.shape[axis] < n + 2 * radius:  # 'symmetric' may need several folds
            padded = np.concatenate([np.flip(padded, axis), padded, np.flip(padded, axis)], axis)
        offset = (padded.shape[axis] - n) // 2 - radius
        padded = np.take(padded, np.arange(offset, offset + n + 2 * radius), axis=axis)
        out = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), axis, padded)
    return out


@pytest.mark.parametrize("shape, sigma", [((20, 17), 1.0), ((12, 30), 2.5), ((5, 6), 3.0)])
def test_gaussian_filter_matches_scipy_semantics(shape, sigma):
    image = np.random.default_rng(0).random(shape)
    got = gaussian_filter(torch.from_numpy(image), sigma).numpy()
    np.testing.assert_allclose(got, reference_gaussian_filter(image, sigma), rtol=1e-12,
                               atol=1e-12)


def test_gaussian_filter_keeps_constants_and_total_mass():
    image = torch.rand(3, 15, 15, dtype=torch.float64)
    out = gaussian_filter(image, 2.0)
    assert out.shape == image.shape
    torch.testing.assert_close(out.sum(dim=(-2, -1)), image.sum(dim=(-2, -1)))
    torch.testing.assert_close(gaussian_filter(torch.full((9, 9), 3.0, dtype=torch.float64), 10.0),
                               torch.full((9, 9), 3.0, dtype=torch.float64))
    with pytest.raises(ConfigError, match="sigma"):
        gaussian_filter(image, 0.0)


@pytest.mark.parametrize("kind", ["lines", "grf", "blobs"])
def test_random_objects_ranges_and_phase(kind):
    obj = make_object(kind, 48, seed=1)
    assert obj.shape == (48, 48) and obj.dtype == torch.complex64
    amplitude = obj.abs().double()
    assert float(amplitude.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(amplitude.min()) >= 0
    phase = obj.angle().double()
    lit = amplitude > 1e-3  # the phase of a zero amplitude is lost
    torch.testing.assert_close(phase[lit], tanh_phase(amplitude)[lit], atol=2e-5, rtol=0)
    assert float(phase.abs().max()) < math.pi
    flat = make_object(kind, 48, seed=1, phase=False)
    assert float(flat.imag.abs().max()) == 0.0
    torch.testing.assert_close(flat.abs(), obj.abs(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["lines", "grf", "blobs"])
def test_random_objects_are_seeded(kind):
    assert torch.equal(make_object(kind, 32, seed=4), make_object(kind, 32, seed=4))
    assert not torch.equal(make_object(kind, 32, seed=4), make_object(kind, 32, seed=5))
    generator = torch.Generator().manual_seed(4)
    assert torch.equal(make_object(kind, 32, seed=generator), make_object(kind, 32, seed=4))


def test_global_rng_is_untouched():
    state = torch.get_rng_state()
    lines_object(32, seed=0)
    grf_object(32, seed=0)
    blobs_object(32, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_lines_object_is_structured_not_noise():
    amplitude = lines_object(64, seed=0).abs().double()
    # heavy smoothing (sigma up to 10 px): neighbouring pixels are strongly correlated
    a, b = amplitude[:, :-1].flatten(), amplitude[:, 1:].flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.95
    assert float(amplitude.std()) > 0.05


def test_blobs_object_has_thin_bars_over_a_background():
    amplitude = blobs_object(96, seed=3).abs().double()
    # the background (0.3 before the division by the maximum, which is at most 1) is the floor
    low = float(amplitude.min())
    assert 0.3 - 1e-6 <= low < 0.6
    # the bars are 1-2 px wide: somewhere a pixel differs from both its left and right
    # neighbours by more than 0.1 in the same direction (a ridge a Gaussian blob never makes)
    left, mid, right = amplitude[:, :-2], amplitude[:, 1:-1], amplitude[:, 2:]
    ridge = torch.minimum(mid - left, mid - right)
    assert float(ridge.max()) > 0.1
    with pytest.raises(ConfigError, match="background"):
        blobs_object(32, background=1.0)


def test_grf_spans_zero_to_one():
    amplitude = grf_object(40, seed=2).abs().double()
    assert float(amplitude.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(amplitude.max()) == pytest.approx(1.0, abs=1e-6)


def test_siemens_star():
    obj = siemens_object(64, spokes=12, spoke_amplitude=0.7, spoke_phase_rad=-0.5)
    amplitude, phase = obj.abs().double(), obj.angle().double()
    assert float(amplitude.min()) == pytest.approx(0.7, abs=1e-6)
    assert float(amplitude.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(phase.min()) == pytest.approx(-0.5, abs=1e-6) and float(phase.max()) <= 1e-7
    assert float(amplitude[0, 0]) == pytest.approx(1.0) and float(phase[0, 0]) == 0.0
    # along a circle the contrast alternates 2 * spokes times
    angle = torch.linspace(0, 2 * math.pi, 2000, dtype=torch.float64)[:-1]
    y = (32 + 20 * torch.sin(angle)).round().long()
    x = (32 + 20 * torch.cos(angle)).round().long()
    dark = phase[y, x] < -0.25
    transitions = int((dark != dark.roll(1)).sum())
    assert transitions == 24


def test_object_from_image():
    image = torch.tensor([[0.0, 2.0], [4.0, 1.0]])
    obj = object_from_image(image)
    torch.testing.assert_close(obj, torch.tensor([[0, 0.5], [1, 0.25]], dtype=torch.complex64))
    phased = object_from_image(image.numpy(), phase=np.full((2, 2), 0.5))
    torch.testing.assert_close(phased.angle(), torch.full((2, 2), 0.5)[None].squeeze(0)
                               * torch.tensor([[0.0, 1], [1, 1]]), atol=1e-6, rtol=0)
    tanh = object_from_image(image, phase="tanh")
    torch.testing.assert_close(tanh.angle().double()[1:],
                               tanh_phase(image.double() / 4)[1:], atol=1e-6, rtol=0)
    complex_in = torch.tensor([[1 + 1j]], dtype=torch.complex128)
    assert object_from_image(complex_in).dtype == torch.complex64


@pytest.mark.parametrize("image, phase, error", [
    (torch.zeros(3, 3), None, DataError),
    (-torch.ones(3, 3), None, DataError),
    (torch.ones(3), None, DataError),
    (torch.full((2, 2), float("nan")), None, DataError),
    (torch.ones(2, 2), torch.ones(3, 3), DataError),
    (torch.ones(2, 2), "random", ConfigError),
])
def test_object_from_image_errors(image, phase, error):
    with pytest.raises(error):
        object_from_image(image, phase=phase)


def test_unknown_kind_and_size():
    with pytest.raises(ConfigError, match="kind"):
        make_object("zebra", 32)
    with pytest.raises(ConfigError, match="size"):
        make_object("lines", 0)
