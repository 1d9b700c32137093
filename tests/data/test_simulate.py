"""Simulation: forward model, dose, Poisson statistics, seeding, the convenience entry point."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pinn.data import ScanData, simulate, simulate_scan
from pinn.data.objects import lines_object
from pinn.data.trajectories import random_positions
from pinn.errors import ConfigError, DataError
from pinn.ops import default_probe, extract_patches

N = 32


@pytest.fixture(scope="module")
def parts():
    obj = lines_object(96, seed=0)
    probe = default_probe(N)
    positions = random_positions((96, 96), N, 64, seed=1)
    return obj, probe, positions


def test_output_is_a_counts_scan(parts):
    obj, probe, positions = parts
    scan = simulate_scan(obj, probe, positions, 1e5, seed=0)
    assert isinstance(scan, ScanData) and scan.counts is True
    assert scan.diffraction.shape == (64, N, N) and scan.diffraction.dtype == torch.float32
    assert torch.equal(scan.positions, positions) and torch.equal(scan.probe, probe)
    assert torch.equal(scan.object, obj)
    counts = scan.diffraction.double().square()
    torch.testing.assert_close(counts, counts.round(), rtol=1e-6, atol=1e-6)  # whole photons


def test_forward_model_at_integer_positions(parts):
    obj, probe, _ = parts
    positions = torch.tensor([[16.0, 16.0], [40.0, 57.0], [80.0, 33.0]], dtype=torch.float64)
    scan = simulate_scan(obj, probe, positions, 1e4, noise=False)
    expected = []
    for y, x in positions.long().tolist():
        window = obj[y - N // 2:y - N // 2 + N, x - N // 2:x - N // 2 + N]  # centre pixel N//2
        far = torch.fft.fftshift(torch.fft.fft2((window * probe).to(torch.complex128),
                                                norm="ortho"))
        expected.append(far.abs().square())
    expected = torch.stack(expected)
    expected = expected * 1e4 / expected.sum(dim=(-2, -1)).mean()
    torch.testing.assert_close(scan.diffraction.double().square(), expected, rtol=1e-4,
                               atol=1e-6 * float(expected.max()))
    assert divmod(int(scan.diffraction[0].argmax()), N) == (N // 2, N // 2)  # zero frequency


def test_probe_modes_add_their_intensities(parts):
    """A (K, N, N) probe: each pattern is the sum of the modes' single-probe intensities (at
    one common scale), and the scan keeps the modes."""
    obj, probe, positions = parts
    modes = torch.stack([probe, 0.5j * probe.roll(3, dims=-1), 0.2 * probe.roll(-2, dims=-2)])
    scan = simulate_scan(obj, modes, positions, 1e4, noise=False)
    assert torch.equal(scan.probe, modes)
    windows = extract_patches(obj[None], positions[None], N)[0].to(torch.complex128)

    def intensity(mode):  # the mode's own intensities in exit-wave units
        energy = (windows * mode).abs().square().sum(dim=(-2, -1)).mean()
        return simulate_scan(obj, mode, positions, 1.0, noise=False).diffraction.double(
        ).square() * energy

    parts_sum = sum(intensity(m) for m in modes)
    expected = parts_sum * 1e4 / parts_sum.sum(dim=(-2, -1)).mean()
    torch.testing.assert_close(scan.diffraction.double().square(), expected, rtol=1e-4,
                               atol=1e-6 * float(expected.max()))
    one = simulate_scan(obj, probe[None], positions, 1e4, seed=5)
    assert torch.equal(one.diffraction, simulate_scan(obj, probe, positions, 1e4,
                                                      seed=5).diffraction)


def test_noise_free_dose_is_exact(parts):
    obj, probe, positions = parts
    scan = simulate_scan(obj, probe, positions, 12345.0, noise=False)
    assert scan.measured_nphotons == pytest.approx(12345.0, rel=1e-6)


@pytest.mark.parametrize("photons", [1e3, 1e6])
def test_mean_total_counts_match_the_dose(parts, photons):
    obj, probe, positions = parts
    scan = simulate_scan(obj, probe, positions, photons, seed=3)
    sigma = math.sqrt(photons / positions.shape[0])  # std of the mean of M Poisson totals
    assert abs(scan.measured_nphotons - photons) < 5 * sigma


def test_poisson_statistics(parts):
    obj, probe, positions = parts
    expected = simulate_scan(obj, probe, positions, 2e5, noise=False).diffraction.double() ** 2
    noisy = simulate_scan(obj, probe, positions, 2e5, seed=9).diffraction.double() ** 2
    bright = expected > 20
    assert int(bright.sum()) > 2000
    z = (noisy[bright] - expected[bright]) / expected[bright].sqrt()
    assert abs(float(z.mean())) < 0.1  # unbiased
    assert float(z.var()) == pytest.approx(1.0, abs=0.1)  # variance equals the mean
    dim = expected < 1e-3
    assert float(noisy[dim].mean()) < 0.01  # almost no counts where none are expected


def test_seeds(parts):
    obj, probe, positions = parts
    a = simulate_scan(obj, probe, positions, 1e4, seed=7)
    b = simulate_scan(obj, probe, positions, 1e4, seed=7)
    c = simulate_scan(obj, probe, positions, 1e4, seed=8)
    assert torch.equal(a.diffraction, b.diffraction)
    assert not torch.equal(a.diffraction, c.diffraction)
    state = torch.get_rng_state()
    simulate_scan(obj, probe, positions, 1e4, seed=7)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(positions=torch.tensor([[10.0, 40.0]], dtype=torch.float64)), DataError, "outside"),
    (dict(positions=torch.tensor([[40.0, 80.5]], dtype=torch.float64)), DataError, "outside"),
    (dict(positions=torch.zeros(0, 2)), DataError, "positions"),
    (dict(probe=torch.ones(8, 6)), DataError, "probe"),
    (dict(probe=torch.ones(0, N, N)), DataError, r"probe has shape \(0, 32, 32\)"),
    (dict(object=torch.ones(3, 20, 20)), DataError, "object"),
    (dict(object=torch.ones(20, 20)), DataError, "smaller"),
    (dict(object=torch.zeros(96, 96)), DataError, "zero"),
    (dict(photons=0.0), ConfigError, "photons"),
    (dict(photons=float("nan")), ConfigError, "photons"),
    (dict(photons=1e20), ConfigError, "at most 1e[+]18 photons"),
    (dict(seed=2**64), ConfigError, "seed must be an int from"),
    (dict(seed="7"), ConfigError, "seed must be an int from"),
])
def test_errors(parts, kwargs, error, words):
    obj, probe, positions = parts
    args = dict(object=obj, probe=probe, positions=positions, photons=1e4)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        simulate_scan(**args)


@pytest.mark.parametrize("kind, scan, probe", [
    ("lines", "random", "default"), ("grf", "raster", "gaussian"), ("siemens", "spiral", "ring")])
def test_simulate_end_to_end(kind, scan, probe):
    data = simulate(kind, n_scans=40, size=N, photons=1e4, seed=2, scan=scan, probe=probe)
    side = N + round(N / 4 * 6)  # default: spacing N/4 for ceil(sqrt(40)) = 7 per side
    assert data.diffraction.shape == (40, N, N) and data.object.shape == (side, side)
    assert data.probe.shape == (N, N) and data.counts is True
    assert abs(data.measured_nphotons - 1e4) < 5 * math.sqrt(1e4 / 40)
    again = simulate(kind, n_scans=40, size=N, photons=1e4, seed=2, scan=scan, probe=probe)
    assert torch.equal(data.diffraction, again.diffraction)
    assert torch.equal(data.positions, again.positions)


def test_simulate_seed_changes_object_positions_and_noise():
    a = simulate(n_scans=20, size=N, photons=1e4, seed=1)
    b = simulate(n_scans=20, size=N, photons=1e4, seed=2)
    assert not torch.equal(a.object, b.object)
    assert not torch.equal(a.positions, b.positions)


def test_simulate_default_raster_is_jittered_and_spaced_a_quarter_window():
    data = simulate("siemens", n_scans=64, size=N, photons=1e3, scan="raster")
    assert data.object.shape == (N + 7 * N // 4, N + 7 * N // 4)
    step = data.positions[1:8, 1].diff()  # along the first row
    assert float(step.mean()) == pytest.approx(N / 4, abs=1.0)
    assert 0 < float((step - N / 4).abs().max()) < 5 * N / 32 * 2
    exact = simulate("siemens", n_scans=64, size=N, photons=1e3, scan="raster", jitter_px=0.0)
    assert torch.equal(exact.positions[:8, 0], torch.full((8,), float(N // 2),
                                                          dtype=torch.float64))


def test_simulate_options():
    data = simulate("lines", n_scans=10, size=16, object_size=40, phase=False, noise=False,
                    photons=500.0)
    assert data.object.shape == (40, 40)
    assert float(data.object.imag.abs().max()) == 0.0
    assert data.measured_nphotons == pytest.approx(500.0, rel=1e-6)
    with pytest.raises(ConfigError, match="object_size"):
        simulate(size=32, object_size=16)
    with pytest.raises(ConfigError, match="probe kind"):
        simulate(size=16, n_scans=4, probe="laser")
    with pytest.raises(ConfigError, match="object kind"):
        simulate("cat", size=16, n_scans=4)


def test_write_read_round_trip_keeps_the_counts_flag(tmp_path):
    from pinn.data import read_npz, write_npz

    data = simulate(n_scans=12, size=16, photons=1e3, seed=0)
    write_npz(tmp_path / "sim.npz", data)
    back = read_npz(tmp_path / "sim.npz")
    assert back.counts is True and torch.equal(back.diffraction, data.diffraction)
    assert back.measured_nphotons == data.measured_nphotons
    np.testing.assert_array_equal(back.object.numpy(), data.object.numpy())


def test_reference_patch_simulator_matches_the_fixture(fixtures_dir):
    from pinn.data.simulate import illuminate_and_diffract

    with np.load(fixtures_dir / "illuminate_and_diffract.npz", allow_pickle=False) as f:
        assert not bool(f["in_draw_poisson"])
        x, scale = illuminate_and_diffract(f["in_Y_I"][..., 0], f["in_Y_phi"][..., 0],
                                           f["in_probe"], float(f["in_nphotons"]))
        # the reference's output is in channel format (B/C, N, N, C) with flat index b*C + c
        expected = torch.from_numpy(f["out_X"]).permute(0, 3, 1, 2).reshape(x.shape)
        reference_scale = float(f["out_intensity_scale"])
    assert scale == pytest.approx(reference_scale, rel=1e-6)  # the reference's is float32
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)


def test_reference_patch_simulator_dose_and_noise():
    from pinn.data.simulate import illuminate_and_diffract

    g = torch.Generator().manual_seed(0)
    amplitude = torch.rand(16, N, N, generator=g)
    phase = torch.rand(16, N, N, generator=g)
    x, scale = illuminate_and_diffract(amplitude, phase, default_probe(N), 1e5)
    counts = (x.double() * scale).square()
    assert float(counts.sum(dim=(-2, -1)).mean()) == pytest.approx(1e5, rel=1e-5)
    noisy, _ = illuminate_and_diffract(amplitude, phase, default_probe(N), 1e5, noise=True)
    noisy_counts = (noisy.double() * scale).square()
    torch.testing.assert_close(noisy_counts, noisy_counts.round(), rtol=1e-5, atol=1e-4)
    assert abs(float(noisy_counts.sum((-2, -1)).mean()) - 1e5) < 5 * math.sqrt(1e5 / 16)


def test_zoom_enlarges_the_features():
    """zoom=2 draws the object at half size and enlarges it: the result is the bilinear
    enlargement of the unzoomed object of half the size, cropped to size."""
    import torch.nn.functional as F

    from pinn.data import make_object

    small = make_object("lines", 32, seed=3)
    large = make_object("lines", 64, seed=3, zoom=2)
    parts = torch.view_as_real(small).permute(2, 0, 1)[None]
    expected = F.interpolate(parts, scale_factor=2, mode="bilinear", align_corners=False)
    expected = torch.view_as_complex(expected[0].permute(1, 2, 0).contiguous())
    assert large.shape == (64, 64)
    torch.testing.assert_close(large, expected)
    # neighbouring pixels agree more than in the unzoomed object of the same size
    plain = make_object("lines", 64, seed=3)
    assert (large[:, 1:] - large[:, :-1]).abs().mean() < (plain[:, 1:] - plain[:, :-1]).abs().mean()


@pytest.mark.parametrize("zoom", [0, -1, 1.5, True])
def test_bad_zoom_is_refused(zoom):
    from pinn.data import make_object

    with pytest.raises(ConfigError, match="zoom"):
        make_object("lines", 64, zoom=zoom)
