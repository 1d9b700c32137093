"""Position refinement: the Fisher information, the Newton step, the zero-mean capped
projection, and recovery of simulated position errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pinn.data import ScanData
from pinn.data.objects import make_object
from pinn.data.probes import hermite_gauss_modes
from pinn.data.trajectories import spiral_positions
from pinn.errors import ConfigError
from pinn.metrics import evaluate_reconstruction
from pinn.ops.modes import orthogonalize_modes
from pinn.ops.ptycho_intensity import ptycho_intensity
from pinn.refine import RefineConfig, Refiner, refine_scan
from pinn.refine.positions import (affine_basis, newton_step, position_fisher, project_offsets,
                                   project_offsets_affine)

pytestmark = pytest.mark.usefixtures("one_thread")


def _windows(obj: torch.Tensor, positions: torch.Tensor, n: int) -> torch.Tensor:
    rounded = positions.round()
    steps = torch.arange(n) - n // 2
    rows = rounded[:, 0, None].long() + steps
    cols = rounded[:, 1, None].long() + steps
    return obj[rows[:, :, None], cols[:, None, :]]


def _simulate(n: int, n_scans: int, object_px: int, powers: tuple[float, ...],
              error_px: float, photons: float = 1e6, seed: int = 0, sigma_px: float = 8.0):
    """A spiral scan of a ``lines`` object with Poisson counts at the true positions and
    recorded positions off by Gaussian errors of ``error_px`` per axis."""
    obj = make_object("lines", object_px, seed=seed)
    truth = spiral_positions((object_px, object_px), n, n_scans)
    modes = hermite_gauss_modes(n, powers, sigma_px)
    expected = ptycho_intensity(_windows(obj, truth, n), modes, (truth - truth.round()).float())
    expected = expected * (photons / float(expected.sum(dim=(-2, -1)).mean()))
    g = torch.Generator().manual_seed(seed + 1)
    counts = torch.poisson(expected, generator=g)
    recorded = truth + error_px * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    scan = ScanData(diffraction=counts.sqrt(), positions=recorded,
                    probe=orthogonalize_modes(modes)[0], object=obj, counts=True)
    return scan, truth, obj


def _rms_error(positions: torch.Tensor, truth: torch.Tensor) -> float:
    diff = positions.double() - truth
    diff = diff - diff.mean(dim=0)
    return float(diff.square().sum(dim=1).mean().sqrt())


def _nll_and_gradient(windows, mode, shifts, counts):
    shifts = shifts.clone().requires_grad_(True)
    intensity = ptycho_intensity(windows, mode[None], shifts, centered=False)
    nll = (intensity - counts * torch.log(intensity)).sum()
    (grad,) = torch.autograd.grad(nll, shifts)
    return nll.detach(), grad


def test_fisher_is_the_curvature_of_the_likelihood_at_the_truth():
    # with counts equal to their expectation, the Hessian of the Poisson NLL in the shift is
    # exactly the Fisher information (single mode: position_fisher is exact)
    n = 24
    obj = make_object("lines", 64, seed=3).to(torch.complex128)
    mode = hermite_gauss_modes(n, (1.0,), n / 6)[0].to(torch.complex128) * 300
    windows = _windows(obj, torch.tensor([[30.0, 33.0], [25.0, 40.0]], dtype=torch.float64), n)
    zero = torch.zeros(2, 2, dtype=torch.float64)
    counts = ptycho_intensity(windows, mode[None], zero, centered=False)
    fisher = position_fisher(windows, mode, counts)
    h = 1e-4
    for axis in (0, 1):
        step = torch.zeros(2, 2, dtype=torch.float64)
        step[:, axis] = h
        up = _nll_and_gradient(windows, mode, step, counts)[1]
        down = _nll_and_gradient(windows, mode, -step, counts)[1]
        hessian_column = (up - down) / (2 * h)  # (B, 2): d grad / d shift_axis
        torch.testing.assert_close(fisher[:, :, axis], hessian_column, rtol=2e-3, atol=1e-6)
    assert bool((fisher.diagonal(dim1=-2, dim2=-1) > 0).all())


def test_a_newton_step_lands_near_the_truth():
    n = 24
    obj = make_object("lines", 64, seed=4).to(torch.complex128)
    mode = hermite_gauss_modes(n, (1.0,), n / 6)[0].to(torch.complex128) * 300
    windows = _windows(obj, torch.tensor([[30.0, 33.0], [28.0, 36.0]], dtype=torch.float64), n)
    counts = ptycho_intensity(windows, mode[None], torch.zeros(2, 2, dtype=torch.float64),
                              centered=False)
    start = torch.tensor([[0.4, -0.3], [-0.2, 0.35]], dtype=torch.float64)
    _, grad = _nll_and_gradient(windows, mode, start, counts)
    fisher = position_fisher(windows, mode, ptycho_intensity(windows, mode[None], start,
                                                             centered=False))
    after = start + newton_step(grad, fisher, ridge=0.0)
    assert float(after.norm(dim=1).max()) < 0.25 * float(start.norm(dim=1).min())


def test_projection_has_zero_mean_respects_the_cap_and_shifts_free_offsets_alike():
    g = torch.Generator().manual_seed(0)
    anchor = torch.randn(300, 2, generator=g)
    anchor -= anchor.mean(dim=0)
    moved = anchor + 2 * torch.randn(300, 2, generator=g) + torch.tensor([0.6, -1.5])
    out = project_offsets(moved, anchor, 1.0)
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(2), rtol=0, atol=1e-5)
    assert float((out - anchor).abs().max()) <= 1.0 + 1e-5
    # optimality (KKT): every offset strictly inside its box moved by one common shift per axis
    free = (out - anchor).abs() < 1.0 - 1e-4
    for axis in (0, 1):
        shift = (moved - out)[free[:, axis], axis]
        assert shift.numel() > 10
        torch.testing.assert_close(shift, shift.mean().expand_as(shift), rtol=0, atol=1e-4)


def _affine_part(offsets: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The least-squares fit ``a + b y + c x`` (per axis) of ``offsets`` over ``positions``."""
    p = positions.double() - positions.double().mean(dim=0)
    design = torch.cat([torch.ones_like(p[:, :1]), p], dim=1)
    return design @ torch.linalg.lstsq(design, offsets.double()).solution


def test_affine_basis_spans_shift_scale_rotation_and_shear():
    g = torch.Generator().manual_seed(0)
    positions = 100 * torch.rand(200, 2, generator=g, dtype=torch.float64)
    basis = affine_basis(positions)
    assert basis.shape == (200, 3)
    torch.testing.assert_close(basis.T @ basis, torch.eye(3, dtype=torch.float64))
    affine = torch.tensor([[0.3, -0.2]]) + positions @ torch.tensor([[0.01, -0.02],
                                                                     [0.015, 0.005]]).double()
    torch.testing.assert_close(basis @ (basis.T @ affine), affine)
    # a scan along a line has no second direction: rank 2
    line = torch.stack([torch.linspace(0, 50, 40), 2 * torch.linspace(0, 50, 40)], dim=1)
    assert affine_basis(line).shape == (40, 2)


def test_affine_projection_removes_the_affine_part_and_respects_the_cap():
    g = torch.Generator().manual_seed(1)
    positions = 120 * torch.rand(300, 2, generator=g, dtype=torch.float64)
    basis = affine_basis(positions)
    anchor = 0.5 * torch.randn(300, 2, generator=g, dtype=torch.float64)
    anchor = anchor - basis @ (basis.T @ anchor)
    local = 0.4 * torch.randn(300, 2, generator=g, dtype=torch.float64)
    scale = 0.01 * (positions - positions.mean(dim=0))  # a 1 % stretch: 0.6 px at the edge
    moved = anchor + local + scale + torch.tensor([0.7, -0.3], dtype=torch.float64)
    loose = project_offsets_affine(moved, anchor, 10.0, basis)
    # where the cap does not bind it is the orthogonal projection: the stretch and the
    # shift are gone, each position's own error is kept
    exact = moved - basis @ (basis.T @ moved)
    torch.testing.assert_close(loose, exact)
    assert float(_affine_part(loose, positions).abs().max()) < 1e-9
    tight = project_offsets_affine(moved, anchor, 0.3, basis)
    assert float(_affine_part(tight, positions).abs().max()) < 1e-9
    assert float((tight - anchor).abs().max()) <= 0.3 + 2e-3
    assert int(((tight - anchor).abs() > 0.29).sum()) > 10  # the cap did bind


def test_positions_wait_until_the_deviance_settles():
    g = torch.Generator().manual_seed(2)
    positions = 40 + 20 * torch.rand(30, 2, generator=g)
    modes = hermite_gauss_modes(16, (1.0,), 3.0)

    def moving_by_epoch(plateau, deviances):
        model = Refiner(positions, (100, 100), modes, refine_positions=True, position_warmup=1,
                        position_plateau=plateau)
        moving = []
        for epoch, deviance in enumerate(deviances):
            model.on_epoch_start(epoch)
            moving.append(model.offsets.requires_grad)
            for value in (deviance * 1.1, deviance * 0.9):  # two steps, mean ``deviance``
                model.observe_deviance(torch.tensor(value))
        return moving

    # falling by half, then by 0.1, then rising: the positions start after the 0.1 fall and
    # keep moving
    assert moving_by_epoch(0.2, [100.0, 50.0, 45.0, 60.0, 59.0]) == [False, False, False,
                                                                     True, True]
    # without the rule: from the warm-up on
    assert moving_by_epoch(None, [100.0, 50.0, 45.0]) == [False, True, True]
    with pytest.raises(ConfigError, match="position_plateau"):
        RefineConfig(position_plateau=1.5)


def _refine_recording_epochs(scan, config, **kwargs):
    """``refine_scan`` plus the offsets at the start of every epoch."""
    starts = []
    original = Refiner.on_epoch_start

    def record(self, epoch):
        starts.append(self.offsets.detach().clone())
        original(self, epoch)

    Refiner.on_epoch_start = record
    try:
        result = refine_scan(scan, config, verbose=False, **kwargs)
    finally:
        Refiner.on_epoch_start = original
    return result, starts


def test_simulated_position_errors_are_recovered_with_zero_mean_and_the_cap():
    # refining from a good object (as after `--init RECON.npz`) at a gentle object rate: the
    # Newton steps do not depend on that rate and recover most of the error in 6 epochs
    scan, truth, obj = _simulate(n=32, n_scans=150, object_px=90, powers=(1.0,),
                                 error_px=1.0, seed=1, sigma_px=5.0)
    config = RefineConfig(epochs=6, batch_size=16, learning_rate=0.005, refine_positions=True,
                          position_warmup=0, position_plateau=None, max_position_step=0.5,
                          position_method="newton")
    result, starts = _refine_recording_epochs(scan, config, init_object=obj)
    before, after = _rms_error(scan.positions, truth), _rms_error(result.positions, truth)
    assert before > 1.3
    assert after < 0.35 * before, (before, after)
    offsets = result.positions - result.positions_initial
    torch.testing.assert_close(offsets.mean(dim=0), torch.zeros(2, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    ends = starts[1:] + [offsets.float()]
    steps = torch.stack([(b - a).abs().max() for a, b in zip(starts, ends)])
    assert float(steps.max()) <= 0.5 + 1e-5
    assert float(steps[0]) > 0.45  # the first epoch reached the cap, so the cap held it
    # Adam on the offsets moves at a rate tied to the object's and barely starts
    adam = refine_scan(scan, dataclasses.replace(config, position_method="adam"),
                       init_object=obj, verbose=False)
    assert _rms_error(adam.positions, truth) > 2 * after


def test_positions_are_recovered_from_a_flat_object_with_the_default_method():
    # a small scan (150 positions, 32 x 32, positions off by 1 px per axis) refined from a flat
    # object: the default position rule (Newton steps, no affine part, start once the deviance
    # settles) at 8 positions per step for 30 epochs: 1.38 -> 0.54 px. Adam on the offsets with
    # only the mean removed: 0.78 px; the same for 10 epochs from epoch 3 (the first rule)
    # ended further off, 1.52 px
    scan, truth, _ = _simulate(n=32, n_scans=150, object_px=90, powers=(1.0,), error_px=1.0,
                               seed=1, sigma_px=5.0)
    config = RefineConfig(batch_size=8, epochs=30, refine_positions=True)
    assert config.position_method == "newton" and config.position_constraint == "affine"
    result = refine_scan(scan, config, verbose=False)
    before, after = _rms_error(scan.positions, truth), _rms_error(result.positions, truth)
    assert after < 0.55 * before, (before, after)
    offsets = result.positions - result.positions_initial
    assert float(_affine_part(offsets, result.positions_initial).abs().max()) < 1e-4


def _phase_ssim(result, obj: torch.Tensor, truth: torch.Tensor) -> float:
    recon = torch.ones_like(obj)
    oy, ox = result.origin_px
    canvas = result.object
    recon[max(oy, 0):oy + canvas.shape[0], max(ox, 0):ox + canvas.shape[1]] = \
        canvas[max(-oy, 0):obj.shape[0] - oy, max(-ox, 0):obj.shape[1] - ox]
    mask = torch.zeros(obj.shape, dtype=torch.bool)
    low = truth.min(dim=0).values.ceil().long() + 12
    high = truth.max(dim=0).values.floor().long() - 12
    mask[low[0]:high[0], low[1]:high[1]] = True
    return evaluate_reconstruction(recon, obj, mask)["phase_ssim"]


def _issue_scan():
    # issue 12's simulated scan: 64 x 64 patterns, 480 positions, 1e6 photons, 3 modes
    # (0.80 / 0.15 / 0.05), recorded positions off by 1.5 px per axis
    return _simulate(n=64, n_scans=480, object_px=192, powers=(0.80, 0.15, 0.05),
                     error_px=1.5)


@pytest.mark.slow
def test_the_issue_target_is_met_with_the_defaults():
    # `pinn refine DATA --probe-modes 3 --refine-positions` (32 per step, 20 epochs): 0.38 px
    # RMS, powers 0.818 / 0.136 / 0.047, phase SSIM 0.916 against 0.870 at the recorded
    # positions for as many epochs (benchmarks/README.md, "Position refinement"). With Adam's
    # usual second-moment decay 0.999 the object stalled and the positions ended 1.83 px off.
    scan, truth, obj = _issue_scan()
    config = RefineConfig(probe_modes=3, refine_positions=True)
    refined = refine_scan(scan, config, verbose=False)
    fixed = refine_scan(scan, dataclasses.replace(config, refine_positions=False),
                        verbose=False)
    assert _rms_error(scan.positions, truth) > 2.0
    assert _rms_error(refined.positions, truth) < 0.5
    torch.testing.assert_close(refined.power_fraction, torch.tensor([0.80, 0.15, 0.05]),
                               atol=0.05, rtol=0)
    assert _phase_ssim(refined, obj, truth) > _phase_ssim(fixed, obj, truth) + 0.02
