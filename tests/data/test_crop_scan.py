"""Detector cropping: the crop itself, the resampling, and the forward model staying consistent."""

from __future__ import annotations

import pytest
import torch

from pinn.data import ScanData, crop_scan
from pinn.data.crop import fourier_crop
from pinn.data.objects import gaussian_filter
from pinn.data.probes import gaussian_probe
from pinn.errors import ConfigError
from pinn.ops import diffract, extract_patches, illuminate


def smooth_object(size=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    amplitude = gaussian_filter(torch.rand(size, size, generator=g, dtype=torch.float64), 4.0)
    phase = gaussian_filter(torch.randn(size, size, generator=g, dtype=torch.float64), 4.0)
    amplitude = 0.5 + amplitude / amplitude.max() / 2
    return torch.polar(amplitude, 5 * phase).to(torch.complex64)


def intensities(obj, probe, positions):
    n = probe.shape[-1]
    return diffract(illuminate(extract_patches(obj[None], positions[None], n)[0], probe)) ** 2


def test_cropped_scan_predicts_the_kept_counts():
    """The coarse object, probe and positions reproduce the central counts (smooth fields)."""
    obj, probe = smooth_object(), gaussian_probe(32, sigma_px=3.0)
    positions = torch.tensor([[30.0, 40.0], [50.0, 36.0], [64.0, 64.0]], dtype=torch.float64)
    full = intensities(obj, probe, positions)  # (3, 32, 32)
    scan = ScanData(diffraction=full.sqrt(), positions=positions, probe=probe, object=obj,
                    counts=True)
    small = crop_scan(scan, 16)
    predicted = intensities(small.object, small.probe, small.positions)  # (3, 16, 16)
    measured = small.diffraction.double() ** 2
    error = (predicted.double() - measured).abs().max() / measured.max()
    assert float(error) < 5e-4  # limited only by how band-limited the fields are
    # and it is the geometry that makes it work: unscaled positions do not fit
    wrong = intensities(small.object, small.probe, positions)
    assert float((wrong.double() - measured).abs().max() / measured.max()) > 0.05


def test_crop_keeps_centre_values_counts_and_indices():
    g = torch.Generator().manual_seed(1)
    scan = ScanData(diffraction=torch.rand(4, 12, 12, generator=g),
                    positions=torch.rand(4, 2, generator=g, dtype=torch.float64) * 20 + 6,
                    probe=torch.randn(12, 12, generator=g, dtype=torch.complex64),
                    scan_index=torch.tensor([0, 0, 1, 1]), counts=True,
                    positions_start=torch.ones(4, 2))
    small = crop_scan(scan, 6)
    assert torch.equal(small.diffraction, scan.diffraction[:, 3:9, 3:9])
    assert torch.equal(small.diffraction[:, 3, 3], scan.diffraction[:, 6, 6])  # zero frequency
    assert torch.equal(small.positions, scan.positions * 0.5)
    assert torch.equal(small.positions_start, torch.full((4, 2), 0.5, dtype=torch.float64))
    assert small.counts and torch.equal(small.scan_index, scan.scan_index)
    assert small.object is None and small.probe.shape == (6, 6)
    assert crop_scan(scan, 12) is scan


def test_object_resampling_keeps_values_and_the_grid():
    obj = torch.full((50, 41), 0.8 + 0.1j, dtype=torch.complex64)
    scan = ScanData(diffraction=torch.ones(1, 16, 16), positions=torch.zeros(1, 2),
                    probe=torch.ones(16, 16), object=obj)
    small = crop_scan(scan, 8).object
    assert small.shape == (25, 21)  # 41 columns padded to 42, halved
    torch.testing.assert_close(small, torch.full((25, 21), 0.8 + 0.1j, dtype=torch.complex64))
    # a ratio of 16/12: sizes padded to multiples of 4, then scaled by 3/4
    assert crop_scan(ScanData(diffraction=torch.ones(1, 16, 16), positions=torch.zeros(1, 2),
                              probe=torch.ones(16, 16), object=obj), 12).object.shape == (39, 33)


def test_fourier_crop_rectangular_and_norms():
    g = torch.Generator().manual_seed(0)
    field = torch.randn(3, 12, 10, generator=g, dtype=torch.complex64)
    small = fourier_crop(field, (6, 4), norm="forward")
    spectrum = torch.fft.fftshift(torch.fft.fft2(field, norm="forward"), dim=(-2, -1))
    torch.testing.assert_close(
        torch.fft.fftshift(torch.fft.fft2(small, norm="forward"), dim=(-2, -1)),
        spectrum[..., 3:9, 3:7], rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="Fourier-crop"):
        fourier_crop(field, (13, 4))


@pytest.mark.parametrize("crop", [5, 1, 14, 8.0, "8"])
def test_bad_crop_sizes(crop):
    scan = ScanData(diffraction=torch.ones(1, 12, 12), positions=torch.zeros(1, 2),
                    probe=torch.ones(12, 12))
    with pytest.raises(ConfigError, match="crop_px"):
        crop_scan(scan, crop)
