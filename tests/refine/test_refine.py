"""The refiner: gradients, resume, recovery of a simulated mixed state, one-line errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pinn.data import ScanData
from pinn.data.probes import hermite_gauss_modes
from pinn.errors import ConfigError, DataError
from pinn.ops.modes import mode_powers, orthogonalize_modes
from pinn.ops.ptycho_intensity import ptycho_intensity
from pinn.refine import RefineConfig, Refiner, refine_scan
from pinn.refine.run import CountsDataset, canvas_frame, refine_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _gaussian_modes(n: int, powers: tuple[float, ...], photons: float) -> torch.Tensor:
    """Orthogonal Hermite-Gauss modes with the given power fractions, total ``photons``."""
    return hermite_gauss_modes(n, tuple(p * photons for p in powers), n / 8)


def _object(size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rough = torch.nn.functional.avg_pool2d(torch.rand(1, 1, size, size, generator=g), 7, 1, 3)[0, 0]
    phase = 0.3 * (rough - rough.mean()) / rough.std().clamp_min(1e-6)
    amplitude = 0.8 + 0.2 * torch.nn.functional.avg_pool2d(
        torch.rand(1, 1, size, size, generator=g), 3, 1, 1)[0, 0]
    return torch.polar(amplitude, phase).to(torch.complex64)


def _scan(modes: torch.Tensor, obj: torch.Tensor, positions: torch.Tensor, seed: int,
          recorded: torch.Tensor | None = None) -> ScanData:
    """Poisson counts of ``obj`` under ``modes`` at the true ``positions`` (window centres)."""
    n = modes.shape[-1]
    rounded = positions.round()
    steps = torch.arange(n) - n // 2
    rows = rounded[:, 0, None].long() + steps
    cols = rounded[:, 1, None].long() + steps
    windows = obj[rows[:, :, None], cols[:, None, :]]
    intensity = ptycho_intensity(windows, modes, (positions - rounded).float())
    counts = torch.poisson(intensity, generator=torch.Generator().manual_seed(seed))
    probe = orthogonalize_modes(modes)[0]
    return ScanData(diffraction=counts.sqrt(), positions=recorded if recorded is not None
                    else positions, probe=probe, object=obj, counts=True)


def _raster(n_side: int, step: float, start: float, jitter: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(n_side), torch.arange(n_side), indexing="ij")
    grid = torch.stack([yy, xx], -1).reshape(-1, 2).double() * step + start
    return grid + jitter * (torch.rand(grid.shape, generator=g, dtype=torch.float64) - 0.5)


def test_position_gradient_matches_finite_differences():
    n = 16
    modes = _gaussian_modes(n, (0.8, 0.2), 1e4)
    positions = _raster(4, 4.0, 12.0, 1.0, seed=0)
    origin, shape = canvas_frame(positions, n, margin=3)
    canvas_positions = (positions - torch.tensor(origin)).float()
    model = Refiner(canvas_positions, shape, modes, _object(shape[0], 1)[:, :shape[1]],
                    refine_positions=True).double()
    counts = CountsDataset(torch.poisson(model(torch.arange(16)).detach().float() * 1.3))
    batch = {k: v.double() if v.is_floating_point() else v
             for k, v in counts.get_batch(torch.arange(16)).items()}
    model.offsets.requires_grad_(True)
    with torch.no_grad():
        model.offsets.copy_(0.3 * (torch.rand(16, 2, dtype=torch.float64) - 0.5))
    loss, _ = refine_loss(model, batch)
    (grad,) = torch.autograd.grad(loss, model.offsets)
    h = 1e-5
    for i, axis in [(0, 0), (5, 1), (9, 0), (14, 1)]:
        with torch.no_grad():
            model.offsets[i, axis] += h
            up = refine_loss(model, batch)[0]
            model.offsets[i, axis] -= 2 * h
            down = refine_loss(model, batch)[0]
            model.offsets[i, axis] += h
        numeric = (up - down) / (2 * h)
        assert float(grad[i, axis]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-9)
    assert grad.abs().max() > 0


def _small_scan(seed: int = 0, jitter_px: float = 0.0, powers=(0.8, 0.15, 0.05)) -> ScanData:
    n = 32
    truth = _raster(10, 5.0, 20.0, 2.0, seed=seed)
    modes = _gaussian_modes(n, powers, 2e5)
    g = torch.Generator().manual_seed(seed + 1)
    recorded = truth + jitter_px * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    return _scan(modes, _object(100, seed + 2), truth, seed + 3, recorded)


@pytest.mark.slow
def test_a_simulated_three_mode_probe_is_recovered():
    scan = _small_scan()
    # with the modes orthogonalised every epoch: by default (at the start and the end only)
    # this small case fits the data better (deviance 1.15 against 1.97) but with powers
    # 0.95 / 0.03 / 0.02 (see docs/DESIGN.md section 9)
    result = refine_scan(scan, RefineConfig(epochs=40, batch_size=8, probe_modes=3,
                                            probe_lr=0.5, orthogonalize_every_epoch=True),
                         verbose=False)
    assert result.probe.shape == (3, 32, 32)
    torch.testing.assert_close(result.power_fraction, torch.tensor([0.8, 0.15, 0.05]),
                               atol=0.05, rtol=0)
    deviance = [h["train_deviance"] for h in result.history]
    assert deviance[-1] < 2.5 < deviance[0]


def test_three_modes_fit_three_mode_data_better_than_one():
    scan = _small_scan()
    config = RefineConfig(epochs=8, batch_size=8, probe_lr=0.5)
    one = refine_scan(scan, dataclasses.replace(config, probe_modes=1), verbose=False)
    three = refine_scan(scan, dataclasses.replace(config, probe_modes=3), verbose=False)
    assert three.history[-1]["train_deviance"] < 0.8 * one.history[-1]["train_deviance"]
    assert three.power_fraction[1] > 0.02  # the weak modes grew from their 2 % start
    assert one.power_fraction.tolist() == [1.0]
    # orthogonalised every epoch, the weak modes take more of the power
    mixed = refine_scan(scan, dataclasses.replace(config, probe_modes=3,
                                                  orthogonalize_every_epoch=True),
                        verbose=False)
    assert mixed.power_fraction[1] > 0.05


def test_resume_continues_exactly(tmp_path):
    scan = _small_scan(seed=4)
    # the positions start at epoch 2 (position_plateau decides it from the deviances of
    # epochs 0 and 1), the first epoch of the resumed run; the probe at epoch 1
    config = RefineConfig(epochs=3, batch_size=25, probe_modes=2, refine_positions=True,
                          position_warmup=1, position_plateau=0.99, probe_warmup=1)
    whole = refine_scan(scan, config, tmp_path / "whole", verbose=False)

    original = Refiner.on_epoch_start

    def stop_at_two(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        original(self, epoch)

    Refiner.on_epoch_start = stop_at_two
    try:
        with pytest.raises(KeyboardInterrupt):
            refine_scan(scan, config, tmp_path / "parts", verbose=False)
    finally:
        Refiner.on_epoch_start = original
    resumed = refine_scan(scan, config, tmp_path / "parts", resume=True, verbose=False)
    assert torch.equal(resumed.object, whole.object)
    assert torch.equal(resumed.probe, whole.probe)
    assert torch.equal(resumed.positions, whole.positions)
    assert not torch.equal(whole.positions, whole.positions_initial)


def test_the_probe_stays_at_its_start_during_the_probe_warmup():
    scan = _small_scan(seed=7)
    starts = []
    original = Refiner.on_epoch_start

    def record(self, epoch):
        original(self, epoch)
        starts.append((self.modes.detach().clone(), self.probe_real.requires_grad))

    Refiner.on_epoch_start = record
    try:
        result = refine_scan(scan, RefineConfig(epochs=3, batch_size=25, probe_modes=2,
                                                probe_warmup=2), verbose=False)
    finally:
        Refiner.on_epoch_start = original
    assert [moving for _, moving in starts] == [False, False, True]
    assert torch.equal(starts[0][0], starts[2][0])  # two epochs: not a single probe step
    assert not torch.allclose(orthogonalize_modes(starts[2][0]), result.probe, atol=1e-3)
    with pytest.raises(ConfigError, match="probe_warmup"):
        RefineConfig(probe_warmup=-1)


def test_probe_support_and_power_constraints_hold_after_every_step():
    scan = _small_scan(seed=6)
    config = RefineConfig(epochs=2, batch_size=25, probe_modes=2, probe_support_radius=8.0,
                          fix_probe_power=True, probe_lr=2.0)
    result = refine_scan(scan, config, verbose=False)
    n = 32
    y = torch.arange(n) - n // 2
    outside = (y[:, None] ** 2 + y[None, :] ** 2) > 64
    assert result.probe[:, outside].abs().max() == 0
    free = refine_scan(scan, dataclasses.replace(config, probe_support_radius=None,
                                                 fix_probe_power=False), verbose=False)
    assert free.probe[:, outside].abs().max() > 0
    # the power stays at its power-matched start, which the unconstrained run leaves
    start = refine_scan(scan, dataclasses.replace(config, epochs=1, probe_lr=0.0),
                        verbose=False)
    powers = [float(mode_powers(r.probe).sum()) for r in (result, free, start)]
    assert powers[0] == pytest.approx(powers[2], rel=1e-4)
    assert abs(powers[1] - powers[2]) > 1e-3 * powers[2]
    with pytest.raises(ConfigError, match="probe_support_radius"):
        RefineConfig(probe_support_radius=0)


def test_bad_inputs_are_one_line_errors():
    scan = _small_scan(seed=5)
    with pytest.raises(ConfigError, match="probe_modes"):
        RefineConfig(probe_modes=0)
    with pytest.raises(DataError, match="probe has shape"):  # a probe file of the wrong size
        dataclasses.replace(scan, probe=torch.ones(16, 16, dtype=torch.complex64))
    sparse = dataclasses.replace(scan, positions=scan.positions * 10)
    with pytest.raises(ConfigError, match="too little overlap"):
        refine_scan(sparse, RefineConfig(epochs=1, refine_positions=True), verbose=False)


def test_the_engine_gets_the_refiners_second_moment_decay():
    # the refiner's Adam runs with RefineConfig.adam_beta2 (0.9 by default, not the network's
    # 0.999: docs/DESIGN.md section 9), given to the engine's optimiser through training()
    assert RefineConfig().training().adam_beta2 == RefineConfig().adam_beta2 == 0.9
    assert RefineConfig(adam_beta2=0.95).training().adam_beta2 == 0.95
    with pytest.raises(ConfigError, match="adam_beta2"):
        RefineConfig(adam_beta2=1.0)
