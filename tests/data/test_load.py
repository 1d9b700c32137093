"""load_scan: format detection, per-format defaults, bz2, probe files, cropping."""

from __future__ import annotations

import bz2
import io

import numpy as np
import pytest
import torch

from pinn.data import ScanData, load_scan, read_npz, read_tike_npz, write_npz
from pinn.data.load import read_probe
from pinn.errors import ConfigError, DataError

M, N = 5, 16


def contract_file(tmp_path, name="scan.npz", compress=False):
    g = torch.Generator().manual_seed(0)
    scan = ScanData(diffraction=torch.rand(M, N, N, generator=g),
                    positions=torch.rand(M, 2, generator=g, dtype=torch.float64) * 30 + 8,
                    probe=torch.randn(N, N, generator=g, dtype=torch.complex64),
                    object=torch.ones(60, 60, dtype=torch.complex64))
    path = tmp_path / name
    write_npz(path, scan)
    if compress:
        path.write_bytes(bz2.compress(path.read_bytes()))
    return path, scan


def tike_file(tmp_path, name="tike.npz.bz2"):
    rng = np.random.default_rng(1)
    arrays = dict(data=rng.poisson(5.0, size=(1, M, N, N)).astype(np.float32),
                  probe=np.ones((1, 1, 1, 1, N, N), np.complex64),
                  scan=rng.uniform(-5, 5, size=(1, M, 2)).astype(np.float32))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = tmp_path / name
    path.write_bytes(bz2.compress(buffer.getvalue()))
    return path, arrays


def assert_same(a: ScanData, b: ScanData):
    assert torch.equal(a.diffraction, b.diffraction)
    assert torch.equal(a.positions, b.positions)
    assert torch.equal(a.probe, b.probe)
    assert a.counts == b.counts


def test_contract_file_with_defaults(tmp_path):
    path, scan = contract_file(tmp_path)
    assert_same(load_scan(path), scan)
    assert_same(load_scan(path), read_npz(path))


def test_bz2_contract_file(tmp_path):
    path, scan = contract_file(tmp_path, "scan.npz.bz2", compress=True)
    assert_same(load_scan(path), scan)
    assert_same(read_npz(path), scan)


def test_tike_file_gets_tike_defaults(tmp_path):
    path, arrays = tike_file(tmp_path)
    scan = load_scan(path)
    assert_same(scan, read_tike_npz(path))
    assert scan.counts is True
    expected = np.fft.fftshift(np.sqrt(arrays["data"][0]), axes=(-2, -1))
    np.testing.assert_array_equal(scan.diffraction.numpy(), expected)


def test_options_override_the_format_defaults(tmp_path):
    path, arrays = tike_file(tmp_path)
    scan = load_scan(path, values="amplitude", zero_frequency="center", positions="center")
    np.testing.assert_array_equal(scan.diffraction.numpy(), arrays["data"][0])
    corners = arrays["scan"][0].astype(np.float64)
    np.testing.assert_array_equal(scan.positions.numpy(), corners - corners.min(0))
    assert scan.counts is False
    contract, original = contract_file(tmp_path)
    moved = load_scan(contract, positions="corner")
    assert torch.equal(moved.positions, original.positions + N // 2)


def test_auto_values_are_refused_for_tike(tmp_path):
    path, _ = tike_file(tmp_path)
    with pytest.raises(DataError, match="values='counts'"):
        load_scan(path, values="auto")


def test_bad_option(tmp_path):
    path, _ = contract_file(tmp_path)
    with pytest.raises(ConfigError, match="zero_frequency"):
        load_scan(path, zero_frequency="edge")


def test_crop(tmp_path):
    path, scan = contract_file(tmp_path)
    small = load_scan(path, crop_px=8)
    assert small.diffraction.shape == (M, 8, 8)
    assert torch.equal(small.diffraction, scan.diffraction[:, 4:12, 4:12])
    assert torch.equal(small.positions, scan.positions / 2)
    assert small.object.shape == (30, 30) and small.probe.shape == (8, 8)


def probe_file(tmp_path, probe, key="probeGuess", name="probe.npz"):
    path = tmp_path / name
    np.savez(path, **{key: probe})
    return path


def test_probe_from_another_file(tmp_path):
    path, _ = contract_file(tmp_path)
    probe = np.full((N, N), 2 + 1j, np.complex64)
    scan = load_scan(path, probe_path=probe_file(tmp_path, probe))
    assert torch.equal(scan.probe, torch.from_numpy(probe))
    # an N x N probe is cropped with the patterns; a crop-sized one is used as it is
    cropped = load_scan(path, crop_px=8, probe_path=probe_file(tmp_path, probe))
    torch.testing.assert_close(cropped.probe, torch.full((8, 8), 4 + 2j, dtype=torch.complex64))
    small = np.full((8, 8), 3.0, np.complex64)
    assert torch.equal(load_scan(path, crop_px=8, probe_path=probe_file(
        tmp_path, small, name="small.npz")).probe, torch.from_numpy(small))
    with pytest.raises(DataError, match="pattern size"):
        load_scan(path, probe_path=probe_file(tmp_path, small, name="small.npz"))


@pytest.mark.parametrize("stored, key, expected", [
    ((4, 4), "probeGuess", (4, 4)),
    ((3, 4, 4), "probeGuess", (3, 4, 4)),
    ((1, 4, 4), "probeGuess", (4, 4)),  # a single mode is (N, N)
    ((1, 1, 2, 4, 4), "probe", (2, 4, 4)),  # tike: (..., 1, 1, K, N, N)
    ((2, 1, 3, 4, 4), "probe", (3, 4, 4)),  # the first view's modes
    ((4, 4, 4), "probe_modes", (4, 4, 4)),
])
def test_read_probe_layouts(tmp_path, stored, key, expected):
    g = np.random.default_rng(0)
    array = (g.normal(size=stored) + 1j * g.normal(size=stored)).astype(np.complex64)
    probe = read_probe(probe_file(tmp_path, array, key=key))
    assert probe.shape == expected and probe.dtype == torch.complex64
    np.testing.assert_array_equal(probe.numpy(), array.reshape(-1, *expected)[0])


def test_read_probe_prefers_all_modes(tmp_path):
    """The solver's reference file holds the dominant mode as 'probe' and all of them as
    'probe_modes': the modes are read."""
    path = tmp_path / "solver.npz"
    modes = np.arange(3 * 4 * 4).reshape(3, 4, 4).astype(np.complex64) + 1
    np.savez(path, probe=modes[0], probe_modes=modes, object=np.ones((9, 9), np.complex64))
    np.testing.assert_array_equal(read_probe(path).numpy(), modes)


def test_probe_file_with_modes(tmp_path):
    path, _ = contract_file(tmp_path)
    modes = np.stack([np.full((N, N), k + 1.0, np.complex64) for k in range(3)])
    scan = load_scan(path, probe_path=probe_file(tmp_path, modes))
    assert torch.equal(scan.probe, torch.from_numpy(modes))
    cropped = load_scan(path, crop_px=8, probe_path=probe_file(tmp_path, modes))
    assert cropped.probe.shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"probe in small.npz is \(3, 8, 8\).*pattern size"):
        load_scan(path, probe_path=probe_file(tmp_path, modes[:, :8, :8], name="small.npz"))


def test_read_probe_keys_and_modes(tmp_path):
    modes = np.arange(2 * 4 * 4).reshape(1, 2, 4, 4).astype(np.complex64)
    probe = read_probe(probe_file(tmp_path, modes, key="probe"))
    np.testing.assert_array_equal(probe.numpy(), modes[0])  # all modes of a tike-like probe
    with pytest.raises(DataError, match="'probeGuess'"):
        read_probe(probe_file(tmp_path, modes, key="illumination", name="other.npz"))
    with pytest.raises(DataError, match="square"):
        read_probe(probe_file(tmp_path, np.ones((4, 5)), name="rect.npz"))
    with pytest.raises(DataError, match="NaN"):
        read_probe(probe_file(tmp_path, np.full((4, 4), np.nan), name="nan.npz"))
    with pytest.raises(DataError, match=r"shape \(0, 4, 4\)"):
        read_probe(probe_file(tmp_path, np.ones((0, 4, 4)), name="no_modes.npz"))


def test_solver_reference_probe_file_gives_its_four_modes(data_dir):
    """--probe-file with the solver's reference takes all four modes ('probe_modes'), the
    dominant one first (the file's 'probe')."""
    path = data_dir / "siemens-star-ptychi.npz"
    modes = read_probe(path)
    assert modes.shape == (4, 128, 128) and modes.dtype == torch.complex64
    with np.load(path, allow_pickle=False) as f:
        np.testing.assert_array_equal(modes[0].numpy(), f["probe"])
        fractions = f["probe_mode_power_fraction"]
    powers = modes.abs().square().sum(dim=(-2, -1)).double()
    np.testing.assert_allclose((powers / powers.sum()).numpy(), fractions, rtol=1e-4)
