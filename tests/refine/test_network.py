"""Network, then refine: :func:`pinn.refine.network.reconstruct_and_refine` and
``pinn reconstruct --refine E``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _cli import run_main
from pinn import cli
from pinn.archive import load_archive, save_archive
from pinn.config import Config, ModelConfig
from pinn.data import simulate, write_npz
from pinn.evaluate import evaluate, load_reconstruction
from pinn.model import build_model
from pinn.reconstruct import reconstruct
from pinn.refine import RefineConfig
from pinn.refine.network import (as_reconstruction, model_probe, reconstruct_and_refine,
                                 unit_amplitude)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 64


@pytest.fixture(scope="module")
def scan():
    return simulate("lines", n_scans=36, size=N, photons=1e5, seed=1, object_size=96, zoom=2)


@pytest.fixture(scope="module")
def archive_path(scan, tmp_path_factory):
    """An untrained gridsize-1 model saved as an archive (what it reconstructs does not matter
    here: the refinement must start from it, whatever it is)."""
    torch.manual_seed(3)
    config = Config(model=ModelConfig(size_px=N, n_filters_scale=1))
    model = build_model(config.model, probe=scan.probe, intensity_scale=30.0)
    return save_archive(model, tmp_path_factory.mktemp("net") / "model.zip", config=config)


@pytest.fixture(scope="module")
def scan_path(scan, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "scan.npz"
    write_npz(path, scan)
    return path


def test_reconstruct_refine_writes_the_refined_outputs_and_fits_better(
        archive_path, scan_path, tmp_path, capsys):
    out = tmp_path / "rec"
    status, stdout, err = run_main(["reconstruct", archive_path, scan_path, "--out", out,
                                    "--refine", "2", "--quiet"], capsys)
    assert status == 0, err
    assert "2 epochs of refinement" in stdout
    for name in ("reconstruction.npz", "phase.png", "amplitude.png", "probe_modes.png",
                 "positions.png", "deviance.png", "report.md", "network/reconstruction.npz",
                 "network/phase.png", "network/amplitude.png"):
        assert (out / name).is_file(), name
    with np.load(out / "reconstruction.npz") as data:
        assert data["probe"].shape == (1, N, N)
        assert data["positions"].shape == data["positions_initial"].shape == (36, 2)
        deviance = data["deviance"]
    assert deviance.shape == (2,) and np.isfinite(deviance).all()
    assert deviance[1] < deviance[0]
    assert "Started from the network's reconstruction" in (out / "report.md").read_text()
    # both are ordinary reconstructions for pinn evaluate
    refined = load_reconstruction(out / "reconstruction.npz")
    network = load_reconstruction(out / "network" / "reconstruction.npz")
    assert not torch.allclose(refined.object[:5, :5], torch.ones(5, 5, dtype=torch.complex64))
    assert network.object.shape != refined.object.shape or \
        not torch.equal(network.object, refined.object)


def test_reconstruct_refine_modes_and_positions(archive_path, scan_path, tmp_path, capsys):
    out = tmp_path / "rec"
    status, _, err = run_main(["reconstruct", archive_path, scan_path, "--out", out,
                               "--refine", "1", "--probe-modes", "2", "--refine-positions",
                               "--quiet"], capsys)
    assert status == 0, err
    with np.load(out / "reconstruction.npz") as data:
        assert data["probe"].shape == (2, N, N)
        assert data["probe_power_fraction"].sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--refine", "0"], "--refine is 0"),
    (["--refine", "2", "--probe-modes", "0"], "--probe-modes is 0"),
    (["--refine", "2", "--stream"], "drop --stream"),
    (["--probe-modes", "2"], "add --refine E"),
    (["--refine-positions"], "add --refine E"),
])
def test_bad_refine_options_give_one_line_and_write_nothing(archive_path, scan_path, tmp_path,
                                                            capsys, argv, message):
    out = tmp_path / "rec"
    status, _, err = run_main(["reconstruct", archive_path, scan_path, "--out", out, "--quiet",
                               *argv], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_the_refinement_starts_from_the_network_object_and_the_model_probe(archive_path, scan):
    archive = load_archive(archive_path)
    # a vanishing learning rate and a fixed probe: the refined state is the start itself
    still = RefineConfig(epochs=1, learning_rate=1e-12, refine_probe=False)
    run = reconstruct_and_refine(archive, scan, config=still)
    network = reconstruct(archive, scan, progress=False, projection_passes=0)  # refine's start
    assert torch.equal(run.network.object, network.object)
    start = unit_amplitude(network)
    oy = network.origin_px[0] - run.refined.origin_px[0]
    ox = network.origin_px[1] - run.refined.origin_px[1]
    h, w = start.shape
    inside = run.refined.object[oy:oy + h, ox:ox + w]
    lit = start.abs() > 0
    torch.testing.assert_close(inside[lit], start[lit], atol=1e-5, rtol=1e-5)
    assert run.network_s > 0 and run.refine_s > 0
    # the probe is the model's, power-matched: proportional to it
    probe = run.refined.probe[0]
    guess = model_probe(archive.model)
    ratio = (probe.conj() * guess).sum() / (probe.abs().square().sum())
    torch.testing.assert_close(probe * ratio, guess, atol=1e-4 * float(guess.abs().max()),
                               rtol=1e-4)


def test_the_model_probe_is_used_unless_told_otherwise(scan):
    torch.manual_seed(4)
    config = Config(model=ModelConfig(size_px=N, n_filters_scale=1, probe_trainable=True))
    model = build_model(config.model, probe=scan.probe, intensity_scale=30.0)
    with torch.no_grad():  # a trained probe: here, a distinct one
        model.probe_real.copy_(torch.view_as_real(model.probe * torch.exp(
            1j * torch.linspace(0, 3, N)[None, :])))
    still = RefineConfig(epochs=1, learning_rate=1e-12, refine_probe=False)

    def direction(probe):
        return probe / probe.abs().square().sum().sqrt()

    for use, expected in ((True, model_probe(model)), (False, scan.probe)):
        run = reconstruct_and_refine(model, scan, config=still, use_model_probe=use)
        got = direction(run.refined.probe[0])
        phase = (expected.conj() * got).sum()
        got = got * phase.conj() / phase.abs()
        torch.testing.assert_close(got, direction(expected), atol=1e-4, rtol=1e-4)


def test_epochs_override_and_refinement_improves_the_fit(archive_path, scan):
    archive = load_archive(archive_path)
    run = reconstruct_and_refine(archive, scan, 3, config=RefineConfig(epochs=20, seed=1))
    deviance = [h["train_deviance"] for h in run.refined.history]
    assert len(deviance) == 3
    assert deviance[-1] < deviance[0]


def test_the_refinement_starts_from_the_stitched_object_without_passes(archive_path, scan):
    """The refinement replaces the model's passes over the scan (their object is already
    fitted, and the refiner's first steps would lose that fit); passes given explicitly run."""
    archive = load_archive(archive_path)
    assert archive.config.model.projection_passes > 0
    stitched = reconstruct(archive, scan, progress=False, projection_passes=0)
    run = reconstruct_and_refine(archive, scan, 1)
    assert torch.equal(run.network.object, stitched.object)
    passed = reconstruct(archive, scan, progress=False, projection_passes=2)
    run = reconstruct_and_refine(archive, scan, 1, projection_passes=2)
    assert torch.equal(run.network.object, passed.object)
    assert not torch.equal(passed.object, stitched.object)


def test_unit_amplitude_and_as_reconstruction(archive_path, scan):
    archive = load_archive(archive_path)
    network = reconstruct(archive, scan, progress=False)
    start = unit_amplitude(network)
    assert float(start.abs()[network.covered()].mean()) == pytest.approx(1.0, rel=1e-5)
    torch.testing.assert_close(start.angle()[network.covered()],
                               network.object.angle()[network.covered()])
    run = reconstruct_and_refine(archive, scan, 1)
    result = as_reconstruction(run.refined)
    assert result.origin_px == run.refined.origin_px and result.crop_px == N
    assert result.n_positions == scan.n_scans
    metrics = evaluate(result, scan.object)
    assert np.isfinite(metrics["phase_ssim"]) and metrics["n_pixels"] > 100


def test_pinn_refine_model_starts_like_reconstruct_refine(archive_path, scan_path, scan,
                                                          tmp_path, capsys):
    """``pinn refine --model`` starts from the same rescaled network object."""
    from pinn.refine.cli import model_start

    start, origin = model_start(archive_path, scan, "cpu")
    # the stitched object before the model's passes, as reconstruct --refine starts
    network = reconstruct(load_archive(archive_path), scan, progress=False, projection_passes=0)
    assert origin == network.origin_px
    torch.testing.assert_close(start, unit_amplitude(network))
    assert float(start.abs()[network.covered()].mean()) == pytest.approx(1.0, rel=1e-5)
    status, _, err = run_main(["refine", scan_path, "--out", tmp_path / "r", "--model",
                               archive_path, "--epochs", "1", "--quiet"], capsys)
    assert status == 0, err
    assert (tmp_path / "r" / "reconstruction.npz").is_file()


def test_a_network_start_refines_at_the_lower_learning_rate(archive_path, scan):
    from pinn.refine.network import NETWORK_LEARNING_RATE, network_refine_config

    assert NETWORK_LEARNING_RATE < RefineConfig().learning_rate
    assert network_refine_config(epochs=3) == RefineConfig(epochs=3,
                                                           learning_rate=NETWORK_LEARNING_RATE)
    assert network_refine_config(learning_rate=0.2).learning_rate == 0.2
    run = reconstruct_and_refine(load_archive(archive_path), scan, 1)
    assert run.refined.history[0]["learning_rate"] == pytest.approx(NETWORK_LEARNING_RATE)


@pytest.mark.parametrize("start, network", [([], False), (["--model", "m"], True),
                                            (["--init", "r.npz"], False)])
def test_pinn_refine_uses_the_network_rate_only_from_a_model(start, network):
    from pinn.refine.cli import config_from_args
    from pinn.refine.network import NETWORK_LEARNING_RATE

    args = cli.build_parser().parse_args(["refine", "d.npz", "--out", "o", "--epochs", "4",
                                          *start])
    config = config_from_args(args)
    assert config.epochs == 4
    expected = NETWORK_LEARNING_RATE if network else RefineConfig().learning_rate
    assert config.learning_rate == expected
