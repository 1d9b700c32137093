"""``pinn refine`` end to end: files written, starts, one-line errors, nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest

from _cli import run_main
from pinn import cli
from pinn.evaluate import load_reconstruction

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "scan.npz"
    assert cli.main(["simulate", str(path), "--object", "siemens", "--n-scans", "64",
                     "--size", "32", "--photons", "1e5", "--object-size", "80",
                     "--scan", "random"]) == 0
    return path


def test_refine_writes_the_reconstruction_figures_and_report(scan_file, tmp_path, capsys):
    out = tmp_path / "refined"
    status, stdout, err = run_main(["refine", scan_file, "--out", out, "--epochs", "3",
                                    "--probe-modes", "2", "--refine-positions", "--quiet"],
                                   capsys)
    assert status == 0, err
    assert "deviance" in stdout
    for name in ("reconstruction.npz", "phase.png", "amplitude.png", "probe_modes.png",
                 "positions.png", "deviance.png", "report.md"):
        assert (out / name).is_file(), name
    with np.load(out / "reconstruction.npz") as data:
        assert data["probe"].shape == (2, 32, 32)
        assert data["probe_power_fraction"].sum() == pytest.approx(1.0, abs=1e-5)
        assert data["positions"].shape == data["positions_initial"].shape == (64, 2)
        assert data["deviance"].shape == (3,)
    # pinn evaluate reads it like a pinn reconstruct output
    result = load_reconstruction(out / "reconstruction.npz")
    assert result.object.shape == result.coverage.shape
    assert "deviance.png" in (out / "report.md").read_text()

    # a second refinement can start from the first one
    again = tmp_path / "again"
    status, _, err = run_main(["refine", scan_file, "--out", again, "--epochs", "1",
                               "--init", out / "reconstruction.npz", "--quiet"], capsys)
    assert status == 0, err


@pytest.mark.parametrize("argv, message", [
    (["--probe-modes", "0"], "--probe-modes is 0"),
    (["--epochs", "0"], "epochs is 0"),
    (["--init", "missing.npz"], "no such file"),
])
def test_bad_inputs_give_one_line_and_leave_nothing(scan_file, tmp_path, capsys, argv,
                                                    message):
    out = tmp_path / "out"
    status, _, err = run_main(["refine", scan_file, "--out", out, "--quiet", *argv], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "reconstruction.npz").exists()


def test_an_existing_refinement_is_not_replaced(scan_file, tmp_path, capsys):
    out = tmp_path / "done"
    assert run_main(["refine", scan_file, "--out", out, "--epochs", "1", "--quiet"], capsys)[0] == 0
    before = (out / "reconstruction.npz").read_bytes()
    status, _, err = run_main(["refine", scan_file, "--out", out, "--epochs", "1", "--quiet"],
                              capsys)
    assert status == 2 and "already holds a refinement" in err
    assert (out / "reconstruction.npz").read_bytes() == before


def test_position_options_and_epoch_defaults_reach_the_config():
    from pinn.refine.cli import config_from_args

    parser = cli.build_parser()
    plain = config_from_args(parser.parse_args(["refine", "d.npz", "--out", "o"]))
    assert plain.epochs == 10 and not plain.refine_positions
    moving = config_from_args(parser.parse_args(["refine", "d.npz", "--out", "o",
                                                 "--refine-positions"]))
    assert moving.epochs == 20 and moving.position_constraint == "affine"
    assert moving.position_method == "newton"
    shift = config_from_args(parser.parse_args(["refine", "d.npz", "--out", "o",
                                                "--refine-positions", "--epochs", "7",
                                                "--position-constraint", "shift"]))
    assert shift.epochs == 7 and shift.position_constraint == "shift"


def test_positions_that_never_started_are_reported(scan_file, tmp_path, capsys):
    # 2 epochs: the deviance cannot have settled (positions need two finished epochs)
    out = tmp_path / "short"
    status, _, err = run_main(["refine", scan_file, "--out", out, "--epochs", "2",
                               "--refine-positions", "--quiet"], capsys)
    assert status == 0, err
    assert "positions were not refined" in err and "--epochs" in err
    assert "Positions: not refined." in (out / "report.md").read_text()
    # when they did move, the report says from which epoch
    out = tmp_path / "long"
    status, _, err = run_main(["refine", scan_file, "--out", out, "--epochs", "12",
                               "--refine-positions", "--quiet"], capsys)
    assert status == 0, err
    assert "positions were not refined" not in err
    assert "(refined from epoch " in (out / "report.md").read_text()
