"""Normalisation constants: the reference's factor, the intensity scale, the default dose."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pinn.data import ScanData, intensity_scale, normalization_factor
from pinn.data.normalize import DEFAULT_NPHOTONS, resolve_nphotons
from pinn.errors import ConfigError, DataError


def amplitudes(m=10, n=16, seed=0):
    return torch.rand(m, n, n, generator=torch.Generator().manual_seed(seed)) * 3


def test_factor_makes_mean_energy_of_grouped_patterns_quarter_n_squared():
    d = amplitudes()
    indices = torch.tensor([[0, 1, 2, 3], [3, 4, 5, 5], [9, 9, 9, 9]])  # duplicates count
    k = normalization_factor(d, indices)
    scaled = (d * k)[indices.flatten()].double()
    mean_energy = scaled.square().sum(dim=(-2, -1)).mean()
    assert float(mean_energy) == pytest.approx((16 / 2) ** 2, rel=1e-6)


def test_factor_matches_the_reference_formula_exactly():
    d = amplitudes(n=8)
    indices = torch.tensor([[0, 2], [2, 7]])
    x = d.numpy()[indices.numpy().flatten()].astype(np.float64)
    expected = np.float32(np.sqrt((8 / 2) ** 2 / np.mean(np.sum(x**2, axis=(1, 2)))))
    k = normalization_factor(d, indices)
    assert k == float(expected)
    assert float(np.float32(k)) == k  # exactly a float32 value


def test_factor_depends_on_duplicates():
    d = amplitudes()
    assert normalization_factor(d, torch.tensor([[0, 1]])) != normalization_factor(
        d, torch.tensor([[0, 0, 0, 1]]))


def test_factor_cancels_any_global_scale():
    d = amplitudes()
    indices = torch.arange(10)[:, None]
    assert normalization_factor(d * 4, indices) == pytest.approx(
        normalization_factor(d, indices) / 4, rel=1e-6)


@pytest.mark.parametrize("d, indices, words", [
    (torch.zeros(3, 4, 4), torch.tensor([[0, 1]]), "zero"),
    (torch.ones(3, 4, 4), torch.tensor([[0, 3]]), "indices"),
    (torch.ones(3, 4, 4), torch.tensor([[-1]]), "indices"),
    (torch.ones(3, 4, 4), torch.zeros(0, 1, dtype=torch.int64), "indices"),
    (torch.ones(3, 4), torch.tensor([[0]]), "diffraction"),
])
def test_factor_errors(d, indices, words):
    with pytest.raises(DataError, match=words):
        normalization_factor(d, indices)


def test_intensity_scale_is_closed_form():
    assert intensity_scale(1e9, 64) == math.sqrt(1e9) / 32
    assert intensity_scale(4.0, 2) == 2.0


@pytest.mark.parametrize("nphotons, n", [(0, 64), (-1, 64), (float("nan"), 64),
                                         (float("inf"), 64), ("many", 64), (1e6, 0),
                                         (1e6, 2.5)])
def test_intensity_scale_errors(nphotons, n):
    with pytest.raises(ConfigError):
        intensity_scale(nphotons, n)


def test_scaled_counts_are_the_square_root_of_the_counts():
    counts = torch.poisson(torch.full((12, 16, 16), 30.0),
                           generator=torch.Generator().manual_seed(1))
    scan = ScanData(diffraction=counts.sqrt(), positions=torch.zeros(12, 2),
                    probe=torch.ones(16, 16), counts=True)
    indices = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 11], [5, 5, 6, 7]])
    nphotons = resolve_nphotons(scan, indices)
    expected = counts[indices.flatten()].double().sum(dim=(-2, -1)).mean()
    assert nphotons == pytest.approx(float(expected), rel=1e-7)  # squares of float32 roots
    scale = intensity_scale(nphotons, 16) * normalization_factor(scan.diffraction, indices)
    assert scale == pytest.approx(1.0, abs=2e-7)
    torch.testing.assert_close((scan.diffraction * normalization_factor(
        scan.diffraction, indices)) * intensity_scale(nphotons, 16), counts.sqrt(),
        rtol=3e-7, atol=0)


def test_default_dose_without_counts_is_the_reference_default():
    scan = ScanData(diffraction=amplitudes(), positions=torch.zeros(10, 2),
                    probe=torch.ones(16, 16))
    assert resolve_nphotons(scan, torch.tensor([[0]])) == DEFAULT_NPHOTONS == 1e9
    assert resolve_nphotons(scan, torch.tensor([[0]]), 123.0) == 123.0
    with pytest.raises(ConfigError, match="nphotons"):
        resolve_nphotons(scan, torch.tensor([[0]]), -5)
