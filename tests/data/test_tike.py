"""The tike-format reader: exact conversions on a synthetic file, and the measured Siemens star."""

from __future__ import annotations

import bz2
import functools
import io

import numpy as np
import pytest
import torch

from pinn.data import read_tike_npz
from pinn.data.crop import fourier_crop
from pinn.errors import ConfigError, DataError

M, N = 5, 16


def tike_arrays(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.poisson(20.0, size=(1, M, N, N)).astype(np.float32)
    probe = (rng.normal(size=(1, 1, 1, 1, N, N)) + 1j * rng.normal(size=(1, 1, 1, 1, N, N)))
    scan = rng.uniform(-30, 30, size=(1, M, 2)).astype(np.float32)
    return dict(data=data, probe=probe.astype(np.complex64), scan=scan)


def write(tmp_path, arrays, compress=True, name="scan.npz.bz2"):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = tmp_path / name
    path.write_bytes(bz2.compress(buffer.getvalue()) if compress else buffer.getvalue())
    return path


def test_conversions_are_exact(tmp_path):
    arrays = tike_arrays()
    scan = read_tike_npz(write(tmp_path, arrays))
    counts = arrays["data"][0]
    expected = np.fft.fftshift(np.sqrt(counts), axes=(-2, -1))
    np.testing.assert_array_equal(scan.diffraction.numpy(), expected)
    assert scan.counts is True
    assert scan.measured_nphotons == pytest.approx(counts.astype(np.float64).sum((1, 2)).mean(),
                                                   rel=1e-6)  # float32 roots, squared
    corners = arrays["scan"][0].astype(np.float64)
    np.testing.assert_array_equal(scan.positions.numpy(), corners - corners.min(0) + N // 2)
    np.testing.assert_array_equal(scan.probe.numpy(), arrays["probe"][0, 0, 0, 0])
    assert scan.object is None


def test_zero_frequency_pixel_moves_to_the_centre(tmp_path):
    arrays = tike_arrays()
    arrays["data"][:] = 0
    arrays["data"][0, :, 0, 0] = 100.0
    scan = read_tike_npz(write(tmp_path, arrays))
    assert torch.all(scan.diffraction[:, N // 2, N // 2] == 10.0)
    assert float(scan.diffraction.sum()) == M * 10.0


def test_positions_can_keep_file_coordinates(tmp_path):
    arrays = tike_arrays()
    scan = read_tike_npz(write(tmp_path, arrays), shift_positions=False)
    np.testing.assert_array_equal(scan.positions.numpy(),
                                  arrays["scan"][0].astype(np.float64) + N // 2)


def test_plain_npz_is_read_too(tmp_path):
    arrays = tike_arrays()
    a = read_tike_npz(write(tmp_path, arrays))
    b = read_tike_npz(write(tmp_path, arrays, compress=False, name="plain.npz"))
    assert torch.equal(a.diffraction, b.diffraction) and torch.equal(a.positions, b.positions)


def test_crop_keeps_the_centre_and_rescales_positions_and_probe(tmp_path):
    arrays = tike_arrays()
    full = read_tike_npz(write(tmp_path, arrays))
    crop = read_tike_npz(write(tmp_path, arrays, name="b.npz.bz2"), crop_px=8)
    lo = N // 2 - 4
    assert torch.equal(crop.diffraction, full.diffraction[:, lo:lo + 8, lo:lo + 8])
    assert torch.equal(crop.diffraction[:, 4, 4], full.diffraction[:, N // 2, N // 2])
    torch.testing.assert_close(crop.positions, full.positions * 0.5, rtol=0, atol=0)
    assert crop.probe.shape == (8, 8) and crop.probe.dtype == torch.complex64


def test_fourier_crop_keeps_the_central_spectrum():
    g = torch.Generator().manual_seed(0)
    field = torch.randn(16, 16, generator=g, dtype=torch.complex64)
    small = fourier_crop(field, 8)
    big_spectrum = torch.fft.fftshift(torch.fft.fft2(field, norm="ortho"))
    small_spectrum = torch.fft.fftshift(torch.fft.fft2(small, norm="ortho"))
    torch.testing.assert_close(small_spectrum, big_spectrum[4:12, 4:12], rtol=0, atol=2e-6)
    # a band-limited field is sampled exactly: a constant stays the same constant
    const = torch.full((16, 16), 2 + 1j, dtype=torch.complex64)
    # ... scaled by N/n = 2, which keeps its energy (the total counts) unchanged
    torch.testing.assert_close(fourier_crop(const, 8), torch.full((8, 8), 4 + 2j,
                                                                  dtype=torch.complex64))


@pytest.mark.parametrize("crop", [7, 0, 32, 2.0, True])
def test_bad_crop_sizes(tmp_path, crop):
    with pytest.raises(ConfigError, match="crop_px"):
        read_tike_npz(write(tmp_path, tike_arrays()), crop_px=crop)


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("scan"), "no 'scan'"),
    (lambda a: a.pop("probe"), "no 'probe'"),
    (lambda a: a.update(data=-a["data"]), "'data'.*negative"),
    (lambda a: a.update(data=np.full((1, M, N, N), np.nan, np.float32)), "'data'.*NaN"),
    (lambda a: a.update(scan=np.zeros((1, M + 1, 2), np.float32)), "'scan'"),
    (lambda a: a.update(probe=np.ones((4, 4), np.complex64)), "'probe'"),
    (lambda a: a.update(data=np.ones((2, M, N, N), np.float32)), "'data'"),
    (lambda a: a.update(probe=np.ones((0, N, N), np.complex64)), r"'probe' has shape \(0, 16"),
    (lambda a: a.update(scan=np.full((1, M, 2), 3.0, np.float32)), "'scan'.*same position"),
])
def test_bad_files(tmp_path, change, words):
    arrays = tike_arrays()
    change(arrays)
    with pytest.raises(DataError, match=words):
        read_tike_npz(write(tmp_path, arrays))


def test_broken_bz2_stream(tmp_path):
    path = write(tmp_path, tike_arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="scan.npz.bz2"):
        read_tike_npz(path)


# ----------------------------------------------------------------------------- measured data

STAR = "siemens-star-small.npz.bz2"


@functools.cache
def star_bytes(path: str) -> bytes:
    """The decompressed archive (bz2 is slow: decompress once per test session)."""
    with bz2.open(path) as f:
        return f.read()


@functools.cache
def read_star(path: str):
    return read_tike_npz(path)


def raw_star(path: str):
    with np.load(io.BytesIO(star_bytes(path)), allow_pickle=False) as arrays:
        return arrays["data"][0], arrays["scan"][0]


def test_siemens_star_is_converted(data_dir):
    path = str(data_dir / STAR)
    scan = read_star(path)
    counts, corners = raw_star(path)
    assert scan.diffraction.shape == (516, 128, 128) and scan.probe.shape == (128, 128)
    assert scan.counts is True
    assert 4.0e5 < scan.measured_nphotons < 5.2e5  # about 4.6e5 counts per pattern
    expected = corners.astype(np.float64) - corners.astype(np.float64).min(0) + 64
    np.testing.assert_array_equal(scan.positions.numpy(), expected)
    assert scan.positions.min() == 64.0
    # amplitudes are sqrt(counts), zero frequency moved from (0, 0) to (64, 64)
    np.testing.assert_allclose(scan.diffraction[3].numpy() ** 2,
                               np.fft.fftshift(counts[3]), rtol=1e-6)


def test_siemens_star_zero_frequency_is_centred(data_dir):
    scan = read_star(str(data_dir / STAR))
    mean = scan.diffraction.double().square().mean(dim=0)  # (128, 128) mean counts
    grid = torch.arange(128, dtype=torch.float64)
    cy = float((mean.sum(dim=1) * grid).sum() / mean.sum())
    cx = float((mean.sum(dim=0) * grid).sum() / mean.sum())
    assert abs(cy - 64) < 4 and abs(cx - 64) < 4
    peak = divmod(int(mean.argmax()), 128)
    assert max(abs(peak[0] - 64), abs(peak[1] - 64)) < 32  # the bright disc, not a corner
    assert float(mean[56:72, 56:72].mean()) > 100 * float(mean[:8, :8].mean())


def test_siemens_star_crop(data_dir, tmp_path):
    path = str(data_dir / STAR)
    plain = tmp_path / "star.npz"
    plain.write_bytes(star_bytes(path))  # the same archive, uncompressed
    full, crop = read_star(path), read_tike_npz(plain, crop_px=64)
    assert crop.diffraction.shape == (516, 64, 64) and crop.probe.shape == (64, 64)
    assert torch.equal(crop.diffraction, full.diffraction[:, 32:96, 32:96])
    torch.testing.assert_close(crop.positions, full.positions / 2, rtol=0, atol=0)
    assert 0.8 * full.measured_nphotons < crop.measured_nphotons <= full.measured_nphotons


def test_probe_modes_are_all_kept(tmp_path):
    """tike's probe is (..., 1, 1, K, N, N): K incoherent modes, all read (and cropped)."""
    arrays = tike_arrays()
    rng = np.random.default_rng(3)
    arrays["probe"] = (rng.normal(size=(1, 1, 1, 3, N, N))
                       + 1j * rng.normal(size=(1, 1, 1, 3, N, N))).astype(np.complex64)
    path = write(tmp_path, arrays)
    scan = read_tike_npz(path)
    np.testing.assert_array_equal(scan.probe.numpy(), arrays["probe"][0, 0, 0])
    crop = read_tike_npz(path, crop_px=8)
    assert crop.probe.shape == (3, 8, 8)
    for k in range(3):  # each mode cropped as a single probe would be
        single = dict(arrays, probe=arrays["probe"][..., k:k + 1, :, :])
        one = read_tike_npz(write(tmp_path, single, name=f"one{k}.npz.bz2"), crop_px=8)
        assert torch.equal(crop.probe[k], one.probe)
