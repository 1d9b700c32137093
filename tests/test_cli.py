"""Tests of the ``pinn`` command: help texts, the simulate -> train -> info -> reconstruct ->
evaluate cycle, one-line errors with exit status 2 (and nothing half-written), --debug
tracebacks, interruption, and ``python -m pinn``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _cli import run_main
from pinn import cli
from pinn.archive import load_archive, read_manifest
from pinn.errors import DataError
from pinn.evaluate import load_reconstruction

TINY = ["--epochs", "1", "--batch-size", "8", "--n-filters-scale", "1", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def subcommands():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A simulated scan and a model trained on it for one epoch, made through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "scan.npz"
    assert cli.main(["simulate", str(data), "--object", "grf", "--n-scans", "30",
                     "--size", "64", "--photons", "1e5", "--object-size", "96"]) == 0
    assert cli.main(["train", str(data), "--out", str(root / "run"), *TINY]) == 0
    return root


def all_paths(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ------------------------------------------------------------------------------------ help


def test_help_documents_every_option(capsys):
    parser, commands = subcommands()
    status, out, _ = run_main(["--help"], capsys)
    assert status == 0
    for name in commands:
        assert name in out
    for option in ("--debug", "--version"):
        assert option in out
    for name, sub in commands.items():
        status, out, err = run_main([name, "--help"], capsys)
        assert status == 0 and err == ""
        for action in sub._actions:
            assert action.help, f"pinn {name}: {action.dest} has no help text"
            for string in action.option_strings:
                assert string in out, f"pinn {name} --help does not mention {string}"
            if not action.option_strings:
                assert action.metavar in out, f"pinn {name}: {action.metavar}"


def test_every_command_has_a_description(capsys):
    for name, sub in subcommands()[1].items():
        assert sub.description and len(sub.description) > 40, f"pinn {name} has no description"
        status, out, _ = run_main([name, "--help"], capsys)
        assert status == 0 and " ".join(sub.description.split()[:4]) in " ".join(out.split())


def test_version(capsys):
    status, out, _ = run_main(["--version"], capsys)
    assert status == 0 and out.startswith("pinn ")


# ----------------------------------------------------------------------------- end to end


def test_simulate_train_info_reconstruct_evaluate(workspace, capsys, tmp_path):
    run = workspace / "run"
    assert (run / "model" / "config.json").is_file()
    assert (run / "checkpoints" / "last.safetensors").is_file()

    status, out, err = run_main(["info", run / "model"], capsys)
    assert status == 0 and err == ""
    assert re.search(r"^gridsize +1 ", out, re.M) and "parameters" in out and "weights sha256" in out
    assert re.search(r"^epochs_run +1", out, re.M)
    # gridsize 1: no blur and no synchronisation by default (docs/DESIGN.md §11.3)
    assert re.search(r"^projection steps +16 per group at inference, from the network's "
                     r"object as it is; no phase synchronisation; then 4 passes over the whole "
                     r"scan$", out, re.M)

    recon = tmp_path / "recon"
    status, out, err = run_main(["reconstruct", run / "model", workspace / "scan.npz",
                                 "--out", recon, "--quiet"], capsys)
    assert status == 0 and err == ""
    assert "30 positions" in out
    assert sorted(p.name for p in recon.iterdir()) == ["amplitude.png", "phase.png",
                                                       "reconstruction.npz"]
    result = load_reconstruction(recon / "reconstruction.npz")
    assert result.object.shape == result.coverage.shape

    metrics_path = tmp_path / "metrics.json"
    status, out, err = run_main(["evaluate", recon / "reconstruction.npz", "--reference",
                                 workspace / "scan.npz", "--json", metrics_path], capsys)
    # a one-epoch model does not resemble the truth yet, which evaluate may say in one line
    assert status == 0 and (err == "" or err.startswith("pinn: warning: ")
                            and err.count("\n") == 1)
    metrics = json.loads(metrics_path.read_text())
    for key in ("amplitude_ssim", "phase_ssim", "amplitude_psnr", "amplitude_frc_half_bit"):
        assert key in metrics and key in out
    assert -1 <= metrics["amplitude_ssim"] <= 1


def test_train_with_probe_modes_and_info_shows_them(workspace, capsys, tmp_path):
    run = tmp_path / "modes"
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", run, "--probe-modes",
                               "3", *TINY], capsys)
    assert status == 0 and err == ""
    archive = load_archive(run)
    assert archive.config.model.probe_modes == 3 and archive.model.probe.shape == (3, 64, 64)
    status, out, _ = run_main(["info", run], capsys)
    assert status == 0
    assert re.search(r"^probe +\[3, 64, 64\] complex64, 3 modes \(power 96\.0 / 2\.0 / 2\.0 %\), "
                     "fixed$", out, re.M)


def test_train_takes_as_many_modes_as_the_probe_file_has(workspace, capsys, tmp_path):
    from pinn.data import read_npz

    modes = read_npz(workspace / "scan.npz").probe[None].repeat(2, 1, 1).numpy()
    modes[1] *= 0.3j
    np.savez(tmp_path / "modes.npz", probeGuess=modes)
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "run",
                               "--probe-file", tmp_path / "modes.npz", *TINY], capsys)
    assert status == 0 and err == ""
    assert load_archive(tmp_path / "run").model.probe.shape == (2, 64, 64)
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "zero",
                               "--probe-modes", "0", *TINY], capsys)
    assert status == 2 and err.count("\n") == 1 and "probe_modes is 0" in err
    assert not (tmp_path / "zero").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_every_directory_of_a_run_gets_the_same_mode(workspace):
    """RUN/model was created 0o700 by mkdtemp while RUN, RUN/checkpoints and RUN/tb got
    mkdir's mode."""
    run = workspace / "run"
    modes = {p.relative_to(run).as_posix(): p.stat().st_mode & 0o777
             for p in [run, *run.rglob("*")] if p.is_dir()}
    assert {"model", "checkpoints"} <= set(modes)
    assert len(set(modes.values())) == 1, modes


def test_info_and_reconstruct_accept_the_run_directory(workspace, capsys, tmp_path):
    run = workspace / "run"
    status, out, err = run_main(["info", run], capsys)
    assert status == 0 and err == ""
    assert re.search(r"^archive +\S*run/model$", out, re.M) and "weights sha256" in out
    status, out, err = run_main(["reconstruct", run, workspace / "scan.npz", "--out",
                                 tmp_path / "recon", "--quiet"], capsys)
    assert status == 0 and (tmp_path / "recon" / "reconstruction.npz").is_file()


def test_an_unfinished_run_says_to_resume(workspace, capsys, tmp_path):
    unfinished = tmp_path / "run"
    shutil.copytree(workspace / "run" / "checkpoints", unfinished / "checkpoints")
    status, out, err = run_main(["info", unfinished], capsys)
    assert_one_line_error(status, out, err, "--resume")
    assert "without a model yet" in err


def test_reconstruct_options_reach_the_library(workspace, capsys, tmp_path):
    status, _, _ = run_main(["reconstruct", workspace / "run" / "model",
                             workspace / "scan.npz", "--out", tmp_path, "--quiet",
                             "--crop-px", "16", "--batch-size", "7", "--flip-x"], capsys)
    assert status == 0
    result = load_reconstruction(tmp_path / "reconstruction.npz")
    assert result.crop_px == 16
    assert result.origin_px[1] < 0  # negated x coordinates


def test_reconstruct_progress_goes_to_stderr(workspace, capsys, tmp_path):
    status, out, err = run_main(["reconstruct", workspace / "run" / "model",
                                 workspace / "scan.npz", "--out", tmp_path], capsys)
    assert status == 0 and "groups" in err and "groups" not in out


def test_train_with_a_config_file(workspace, capsys, tmp_path):
    manifest = json.loads((workspace / "run" / "model" / "config.json").read_text())
    config = manifest["config"]
    config["training"]["learning_rate"] = 5e-4
    (tmp_path / "config.json").write_text(json.dumps(config))
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "run",
                               "--config", tmp_path / "config.json", "--epochs", "1",
                               "--nphotons", "2e5", "--quiet"], capsys)
    assert status == 0, err
    loaded = load_archive(tmp_path / "run" / "model").config
    assert loaded.training.learning_rate == 5e-4
    assert loaded.data.nphotons == 2e5
    assert loaded.model.n_filters_scale == 1  # from the file
    assert loaded.training.epochs == 1  # the command line wins


@pytest.mark.parametrize("source", ["run/model/config.json", "run/model", "run", "model.zip"])
def test_a_runs_configuration_is_reused_as_it_is_stored(workspace, capsys, tmp_path, source):
    """An archive's config.json, the archive (directory or zip) and the run directory all
    give the run's recipe (an archive's config.json was refused: "unknown configuration
    sections ['config', ...]")."""
    original = load_archive(workspace / "run" / "model")
    if source == "model.zip":
        from pinn.archive import save_archive

        save_archive(original.model, tmp_path / "model.zip", config=original.config)
        path = tmp_path / "model.zip"
    else:
        path = workspace / source
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "again",
                               "--config", path, "--set", "training.plateau_patience=7",
                               "--quiet"], capsys)
    assert status == 0, err
    reused = load_archive(tmp_path / "again" / "model").config
    assert reused.model == original.config.model and reused.data == original.config.data
    assert reused.training == dataclasses.replace(original.config.training, plateau_patience=7)


def test_set_reaches_every_section_and_flags_win(workspace, capsys, tmp_path):
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "run",
                               *TINY, "--set", "training.plateau_patience=6",
                               "--set", "training.early_stopping_patience=0",
                               "--set", "training.grad_clip_norm=null",
                               "--set", "model.amp_activation=swish",
                               "--set", "data.neighbors=5", "--set", "training.epochs=3"],
                              capsys)
    assert status == 0, err
    config = load_archive(tmp_path / "run" / "model").config
    assert config.training.plateau_patience == 6 and config.training.early_stopping_patience == 0
    assert config.model.amp_activation == "swish" and config.data.neighbors == 5
    assert config.training.epochs == 1  # --epochs 1 (in TINY) overrides --set


@pytest.mark.parametrize("text, seconds", [("150", 150.0), ("90s", 90.0), ("3m", 180.0),
                                           ("1.5h", 5400.0), ("1h30m", 5400.0),
                                           ("2m30s", 150.0)])
def test_durations(text, seconds):
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "3x", "-1", "0", "1m1h"])
def test_bad_durations(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_duration(text)


def training_config(argv):
    args = cli.build_parser().parse_args(["train", "data.npz", "--out", "run", *argv])
    return cli.commands.training_config(args).training


def test_max_time_sets_the_budget_and_a_planned_decay():
    config = training_config(["--max-time", "3m"])
    assert (config.max_time_s, config.epochs, config.schedule) == (180.0, None, "cosine")
    config = training_config(["--max-time", "150", "--epochs", "7", "--schedule", "plateau"])
    assert (config.max_time_s, config.epochs, config.schedule) == (150.0, 7, "plateau")
    config = training_config([])
    assert (config.max_time_s, config.epochs, config.schedule) == (None, 50, "plateau")


def test_train_options_reach_train_scan(workspace, monkeypatch, capsys, tmp_path):
    from pinn import fit

    calls = []

    def fake(scan, config, out, **kwargs):
        calls.append(kwargs)
        raise DataError("stop here")

    monkeypatch.setattr(fit, "train_scan", fake)
    run_main(["train", workspace / "scan.npz", "--out", tmp_path / "r", "--overwrite",
              "--amp", "--amp-force", *TINY], capsys)
    assert calls[0]["overwrite"] is True and calls[0]["force_precision"] is True
    assert calls[0]["resume"] is False


def test_overwrite_replaces_a_run_and_resume_extends_it(workspace, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", run, "--overwrite",
                               *TINY], capsys)
    assert status == 0, err
    assert len(list((run / "tb").iterdir())) == 2  # the replaced run's logs are kept apart
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", run, "--resume",
                               "--epochs", "2", *TINY[2:]], capsys)
    assert status == 0, err
    provenance = read_manifest(run / "model")["provenance"]
    assert provenance["epochs_run"] == 2
    assert provenance["plan_changes"] == [{"epoch": 1, "field": "epochs", "old": 1, "new": 2}]
    assert len(list((run / "tb").iterdir())) == 2  # the resumed run continued its own logs


def test_max_time_stops_saves_the_model_and_resumes_with_a_larger_budget(workspace, capsys,
                                                                        tmp_path):
    run = tmp_path / "run"
    budget = ["--batch-size", "8", "--n-filters-scale", "1", "--quiet",
              "--set", "training.early_stopping_patience=0"]
    status, out, err = run_main(["train", workspace / "scan.npz", "--out", run,
                                 "--max-time", "2", *budget], capsys)
    assert status == 0, err
    archive = load_archive(run / "model")  # a valid archive, as at a normal end
    assert archive.config.training.max_time_s == 2.0 and archive.config.training.epochs is None
    provenance = read_manifest(run / "model")["provenance"]
    assert provenance["stop_reason"] == "max_time" and provenance["training_seconds"] < 2 + 2
    first_epochs = provenance["epochs_run"]
    status, out, err = run_main(["train", workspace / "scan.npz", "--out", run, "--resume",
                                 "--max-time", "4", *budget], capsys)
    assert status == 0, err
    provenance = read_manifest(run / "model")["provenance"]
    assert provenance["stop_reason"] == "max_time" and provenance["epochs_run"] > first_epochs
    assert provenance["plan_changes"] == [{"epoch": first_epochs, "field": "max_time_s",
                                           "old": 2.0, "new": 4.0}]


# ------------------------------------------------------------------------------------ errors


def assert_one_line_error(status, out, err, match=""):
    assert status == 2
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("pinn: error: ")
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "text.npz").write_text("this is not an npz file\n")
    np.savez(tmp_path / "nokeys.npz", something=np.zeros(3))
    scan = dict(diffraction=np.ones((4, 64, 64), np.float32), probeGuess=np.ones((64, 64)),
                xcoords=np.array([40.0, 48, 56, 64]), ycoords=np.array([40.0, 40, 48, 48]))
    np.savez(tmp_path / "outside.npz", **scan, objectGuess=np.ones((80, 80), np.complex64))
    np.savez(tmp_path / "samepos.npz", **{**scan, "xcoords": np.full(4, 40.0),
                                          "ycoords": np.full(4, 40.0)})
    np.savez(tmp_path / "far.npz", **{**scan, "xcoords": scan["xcoords"] * 1e7})
    np.savez(tmp_path / "pickled.npz", **{**scan, "xcoords": scan["xcoords"].astype(object)})
    np.savez(tmp_path / "truncated.npz", **scan)
    whole = (tmp_path / "truncated.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "latin1.json").write_bytes('{"model": {"amp_activation": "s\xefgmoid"}}'
                                           .encode("latin-1"))
    (tmp_path / "strbool.json").write_text('{"model": {"object_big": "false"}}')
    np.savez(tmp_path / "three.npz", **{k: v[:3] if k in ("diffraction", "xcoords", "ycoords")
                                        else v for k, v in scan.items()})
    np.savez(tmp_path / "n32.npz", **{**scan, "diffraction": np.ones((4, 32, 32), np.float32),
                                      "probeGuess": np.ones((32, 32))})
    return tmp_path


def corrupt_copy(workspace, tmp_path):
    bad = tmp_path / "corrupt_model"
    bad.mkdir()
    for name in ("config.json", "model.safetensors"):
        data = bytearray((workspace / "run" / "model" / name).read_bytes())
        if name == "model.safetensors":
            data[len(data) // 2] ^= 0xFF
        (bad / name).write_bytes(bytes(data))
    return bad


ERROR_CASES = {
    "missing data file": (["train", "{tmp}/absent.npz", "--out", "{out}", *TINY],
                          "absent.npz"),
    "non-npz file": (["train", "{tmp}/text.npz", "--out", "{out}", *TINY], "text.npz"),
    "npz missing keys": (["train", "{tmp}/nokeys.npz", "--out", "{out}", *TINY], "xcoords"),
    "unknown device": (["train", "{data}", "--out", "{out}", "--device", "tpu9", *TINY],
                       "device"),
    "fp16 on CPU": (["train", "{data}", "--out", "{out}", "--amp", "fp16", *TINY], "fp16"),
    "gridsize 0": (["train", "{data}", "--out", "{out}", "--gridsize", "0", *TINY],
                   "gridsize"),
    "size 100": (["train", "{data}", "--out", "{out}", "--size", "100", *TINY], "100"),
    "size unlike the data": (["train", "{data}", "--out", "{out}", "--size", "128", *TINY],
                             "128"),
    "validation fraction 1": (["train", "{data}", "--out", "{out}",
                               "--validation-fraction", "1", *TINY], "validation_fraction"),
    "missing config file": (["train", "{data}", "--out", "{out}", "--config",
                             "{tmp}/absent.json", *TINY], "absent.json"),
    "archive does not exist": (["reconstruct", "{tmp}/no_model", "{data}", "--out", "{out}"],
                               "no_model"),
    "corrupt archive": (["reconstruct", "{corrupt}", "{data}", "--out", "{out}"], "checksum"),
    "reconstruct unknown device": (["reconstruct", "{model}", "{data}", "--out", "{out}",
                                    "--device", "tpu9"], "device"),
    "reconstruct bad data": (["reconstruct", "{model}", "{tmp}/text.npz", "--out", "{out}"],
                             "text.npz"),
    "reconstruct zero crop": (["reconstruct", "{model}", "{data}", "--out", "{out}",
                               "--crop-px", "0"], "crop_px"),
    "info missing archive": (["info", "{tmp}/no_model"], "no_model"),
    "info corrupt archive": (["info", "{corrupt}"], "checksum"),
    "info zip not an archive": (["info", "{tmp}/text.npz"], "text.npz"),
    "evaluate non-npz": (["evaluate", "{tmp}/text.npz", "--reference", "{data}", "--json",
                          "{out}/m.json"], "text.npz"),
    "evaluate missing keys": (["evaluate", "{tmp}/nokeys.npz", "--reference", "{data}",
                               "--json", "{out}/m.json"], "lacks"),
    "evaluate no ground truth": (["evaluate", "{recon}", "--reference", "{tmp}/nokeys.npz",
                                  "--json", "{out}/m.json"], "objectGuess"),
    "simulate bad size": (["simulate", "{out}/s.npz", "--size", "0"], "size"),
    "simulate bad photons": (["simulate", "{out}/s.npz", "--photons", "-5"], "photons"),
    "demo unknown device": (["demo", "--out", "{out}", "--device", "tpu9", "--quick"],
                            "device"),
    "unknown choice": (["simulate", "{out}/s.npz", "--object", "cat"], "cat"),
    "no command": ([], "COMMAND"),
    "not an int": (["train", "{data}", "--out", "{out}", "--epochs", "many"], "many"),
    "missing --out": (["train", "{data}"], "--out"),
    "too few points for the gridsize": (["train", "{tmp}/three.npz", "--out", "{out}",
                                         "--gridsize", "2", *TINY], "needs at least C = 4"),
    "patterns of an unsupported size": (["train", "{tmp}/n32.npz", "--out", "{out}", *TINY],
                                        "size_px is 32"),
    "objectGuess smaller than the scan": (["train", "{tmp}/outside.npz", "--out", "{out}",
                                           *TINY], "outside 'objectGuess'"),
    "all positions at one point": (["train", "{tmp}/samepos.npz", "--out", "{out}", *TINY],
                                   "same position"),
    "positions in nanometres": (["train", "{tmp}/far.npz", "--out", "{out}", *TINY],
                                "not metres or nanometres"),
    "pickled coordinates": (["train", "{tmp}/pickled.npz", "--out", "{out}", *TINY],
                            "pickled object array"),
    "truncated npz": (["train", "{tmp}/truncated.npz", "--out", "{out}", *TINY],
                      "truncated.npz"),
    "set without =": (["train", "{data}", "--out", "{out}", "--set", "training.epochs",
                       *TINY], "SECTION.KEY=VALUE"),
    "set unknown key": (["train", "{data}", "--out", "{out}", "--set",
                         "training.plateau_patiense=4", *TINY], "did you mean 'plateau_patience'"),
    "set bad value": (["train", "{data}", "--out", "{out}", "--set",
                       "training.plateau_patience=soon", *TINY], "plateau_patience is 'soon'"),
    "config dir without configuration": (["train", "{data}", "--out", "{out}", "--config",
                                          "{tmp}", *TINY], "without a configuration"),
    "config not UTF-8": (["train", "{data}", "--out", "{out}", "--config",
                          "{tmp}/latin1.json", *TINY], "not UTF-8"),
    "config string for a bool": (["train", "{data}", "--out", "{out}", "--config",
                                  "{tmp}/strbool.json", *TINY], "model.object_big is 'false'"),
    "seed too large": (["train", "{data}", "--out", "{out}", "--seed",
                        "99999999999999999999999", *TINY], "training.seed"),
    "infinite learning rate": (["train", "{data}", "--out", "{out}", "--lr", "inf", *TINY],
                               "learning_rate is inf"),
    "gridsize 3 needs more neighbours": (["train", "{data}", "--out", "{out}", "--gridsize",
                                          "3", *TINY], "data.neighbors"),
    "resume from a corrupt checkpoint": (["train", "{data}", "--out", "{damaged_run}",
                                          "--resume", *TINY], "corrupt"),
    "train into a finished run": (["train", "{data}", "--out", "{finished_run}", *TINY],
                                  "already holds a trained model"),
    "resume with nothing to resume": (["train", "{data}", "--out", "{out}", "--resume",
                                       *TINY], "nothing to resume"),
    "resume and overwrite": (["train", "{data}", "--out", "{finished_run}", "--resume",
                              "--overwrite", *TINY], "exclude each other"),
    "resume with another batch size": (["train", "{data}", "--out", "{finished_run}",
                                        "--resume", "--epochs", "2", "--batch-size", "4",
                                        "--n-filters-scale", "1", "--quiet"],
                                       "training.batch_size was 8 and is now 4"),
    "max-time not a duration": (["train", "{data}", "--out", "{out}", "--max-time", "3x",
                                 *TINY], "'3x' is not a duration"),
    "reconstruct positions in nanometres": (["reconstruct", "{model}", "{tmp}/far.npz",
                                             "--out", "{out}"], "not metres"),
    "info incomplete archive": (["info", "{incomplete}"], "lacks ['probe_mask']"),
    "simulate seed too large": (["simulate", "{out}/s.npz", "--seed",
                                 "99999999999999999999999"], "seed"),
    "simulate photons beyond int64 counts": (["simulate", "{out}/s.npz", "--photons", "1e20"],
                                             "photons"),
}


def incomplete_copy(workspace, tmp_path):
    """The workspace archive without one model option in its config.json."""
    bad = tmp_path / "incomplete_model"
    shutil.copytree(workspace / "run" / "model", bad)
    manifest = json.loads((bad / "config.json").read_text())
    del manifest["config"]["model"]["probe_mask"]
    (bad / "config.json").write_text(json.dumps(manifest))
    return bad


def damaged_run(workspace, tmp_path):
    """A copy of the workspace run whose checkpoint has one flipped byte."""
    run = tmp_path / "damaged_run"
    shutil.copytree(workspace / "run", run)
    checkpoint = run / "checkpoints" / "last.safetensors"
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0x04
    checkpoint.write_bytes(bytes(data))
    return run


def finished_run(workspace, tmp_path):
    """A copy of the workspace run (a finished 1-epoch run)."""
    run = tmp_path / "finished_run"
    shutil.copytree(workspace / "run", run)
    return run


@pytest.fixture(scope="module")
def saved_recon(workspace, tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    assert cli.main(["reconstruct", str(workspace / "run" / "model"),
                     str(workspace / "scan.npz"), "--out", str(out), "--quiet"]) == 0
    return out / "reconstruction.npz"


def test_evaluate_warns_once_against_the_truth_of_another_scan(workspace, saved_recon, capsys,
                                                               tmp_path):
    from pinn.evaluate import load_ground_truth
    from pinn.reconstruct import Reconstruction, save_reconstruction

    saved = load_reconstruction(saved_recon)
    truth = load_ground_truth(workspace / "scan.npz")
    exact = Reconstruction(object=saved.object_window(truth), coverage=saved.coverage,
                           origin_px=saved.origin_px, crop_px=saved.crop_px, n_positions=0,
                           n_groups=0)
    recon = save_reconstruction(exact, tmp_path / "exact")["npz"]
    status, out, err = run_main(["evaluate", recon, "--reference", workspace / "scan.npz"],
                                capsys)
    assert status == 0 and err == "" and "amplitude_ssim" in out

    other = tmp_path / "other.npz"
    assert cli.main(["simulate", str(other), "--object", "grf", "--n-scans", "30", "--size",
                     "64", "--photons", "1e5", "--object-size", "96", "--seed", "1"]) == 0
    capsys.readouterr()
    status, out, err = run_main(["evaluate", recon, "--reference", other], capsys)
    assert status == 0 and "amplitude_ssim" in out  # the metrics are still printed
    assert err.startswith("pinn: warning: the reconstruction hardly resembles the ground truth")
    assert err.count("\n") == 1 and "same scan" in err


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_input_is_one_line_and_writes_nothing(case, workspace, saved_recon, inputs,
                                                  capsys):
    argv, match = ERROR_CASES[case]
    out = inputs / "out"
    values = {"tmp": inputs, "out": out, "data": workspace / "scan.npz",
              "model": workspace / "run" / "model", "recon": saved_recon,
              "corrupt": corrupt_copy(workspace, inputs) if "{corrupt}" in argv else "",
              "incomplete": incomplete_copy(workspace, inputs) if "{incomplete}" in argv else "",
              "damaged_run": damaged_run(workspace, inputs) if "{damaged_run}" in argv else "",
              "finished_run": finished_run(workspace, inputs) if "{finished_run}" in argv
              else ""}
    argv = [a.format(**values) for a in argv]
    before = all_paths(inputs)
    status, stdout, err = run_main(argv, capsys)
    assert_one_line_error(status, stdout, err, match)
    assert all_paths(inputs) == before, "files were left behind"


def test_demo_command_passes_its_options(monkeypatch, capsys, tmp_path):
    from pinn import demo

    calls = []

    def fake_demo(out, **kwargs):
        calls.append((out, kwargs))
        return out / "report.md"

    monkeypatch.setattr(demo, "run_demo", fake_demo)
    status, out, _ = run_main(["demo", "--out", tmp_path, "--quick", "--quiet"], capsys)
    assert status == 0 and "report.md" in out
    assert calls == [(tmp_path, {"device": "cpu", "quick": True, "verbose": False})]


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(DataError):
        cli.main(["--debug", "train", str(tmp_path / "absent.npz"), "--out",
                  str(tmp_path / "o"), *TINY])


def test_interrupted_training_exits_130(workspace, monkeypatch, capsys, tmp_path):
    from pinn import fit
    from pinn.engine import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("training interrupted at epoch 1; checkpoint saved")

    monkeypatch.setattr(fit, "train_scan", interrupted)
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "r",
                               *TINY], capsys)
    assert status == 130 and err.strip() == "pinn: training interrupted at epoch 1; " \
        "checkpoint saved; run the same command with --resume to continue"

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit, "train_scan", ctrl_c)
    status, _, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "r",
                               *TINY], capsys)
    assert status == 130 and err.strip() == "pinn: interrupted"


def test_messages_over_several_lines_are_printed_as_one(workspace, monkeypatch, capsys,
                                                       tmp_path):
    from pinn import fit

    def fail(*args, **kwargs):
        raise DataError("first line\n\tsecond line")

    monkeypatch.setattr(fit, "train_scan", fail)
    status, out, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "r",
                                 *TINY], capsys)
    assert_one_line_error(status, out, err, "pinn: error: first line second line")


def test_os_errors_are_one_line(workspace, saved_recon, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, out, err = run_main(["evaluate", saved_recon, "--reference",
                                 workspace / "scan.npz", "--json", blocker / "m.json"], capsys)
    assert_one_line_error(status, out, err, str(blocker))


def test_bugs_are_not_hidden(workspace, monkeypatch, tmp_path):
    """An unexpected exception (a bug, not a user error) keeps its traceback."""
    from pinn import fit

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(fit, "train_scan", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["train", str(workspace / "scan.npz"), "--out", str(tmp_path / "o"), *TINY])


# ----------------------------------------------------------------------------- processes


def run_process(args, **kwargs):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_python_dash_m_pinn_help():
    proc = run_process([sys.executable, "-m", "pinn", "--help"])
    assert proc.returncode == 0
    assert "simulate" in proc.stdout and "reconstruct" in proc.stdout


def test_console_script_error_in_a_process(tmp_path):
    script = Path(sys.executable).with_name("pinn")
    if not script.exists():
        pytest.skip("the pinn console script is not installed beside this python")
    proc = run_process([str(script), "info", str(tmp_path / "nothing")])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pinn: error: no archive at {tmp_path / 'nothing'}; pass a directory written by "
        "`pinn train` (RUN/model) or a .zip archive"]
    assert proc.stdout == ""


def test_debug_traceback_in_a_process(tmp_path):
    proc = run_process([sys.executable, "-m", "pinn", "--debug", "info",
                        str(tmp_path / "nothing")])
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ArchiveError" in proc.stderr


def test_zip_archives_work_from_the_command_line(workspace, capsys, tmp_path):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("config.json", "model.safetensors"):
            archive.write(workspace / "run" / "model" / name, name)
    status, out, _ = run_main(["info", path], capsys)
    assert status == 0 and "weights sha256" in out


def test_sigterm_then_resume_gives_the_uninterrupted_weights_bit_for_bit(tmp_path):
    """The real command, in processes: a SIGTERM mid-training saves a checkpoint and exits 130
    with one line; ``--resume`` finishes the run; its archive equals an uninterrupted run's."""
    from pinn.data import simulate, write_npz

    data = tmp_path / "scan.npz"
    write_npz(data, simulate("grf", n_scans=24, size=64, object_size=96, photons=1e5, seed=3))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}

    def train(out, *extra):
        return [sys.executable, "-m", "pinn", "train", str(data), "--out", str(out),
                "--epochs", "3", "--batch-size", "2", "--n-filters-scale", "1", "--quiet",
                *extra]

    reference = subprocess.Popen(train(tmp_path / "reference"), env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    interrupted = subprocess.Popen(train(tmp_path / "run"), env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 240
    while not checkpoint.exists():  # the first epoch is done; two more remain
        assert interrupted.poll() is None, interrupted.communicate()
        assert time.monotonic() < deadline, "the first epoch never finished"
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGTERM)
    out, err = interrupted.communicate(timeout=240)
    assert interrupted.returncode == 130, err
    assert re.fullmatch(r"pinn: training interrupted at epoch [23], step \d+; checkpoint saved "
                        r"to \S+last\.safetensors; run the same command with --resume to "
                        r"continue\n", err), err
    assert not (tmp_path / "run" / "model").exists()

    resumed = subprocess.run(train(tmp_path / "run", "--resume"), env=env, text=True,
                             capture_output=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait(timeout=240) == 0, reference.communicate()[1]
    weights = (tmp_path / "run" / "model" / "model.safetensors").read_bytes()
    assert weights == (tmp_path / "reference" / "model" / "model.safetensors").read_bytes()
    manifests = [read_manifest(tmp_path / name / "model") for name in ("run", "reference")]
    assert manifests[0]["provenance"]["epochs_run"] == 3
    assert manifests[0]["provenance"]["final_train_loss"] == \
        manifests[1]["provenance"]["final_train_loss"]


@pytest.mark.parametrize("generator, output", [("unet", "real_imag"), ("fno", "amp_phase")])
def test_train_generator_options_reach_the_archive(generator, output, workspace, capsys,
                                                    tmp_path):
    status, out, err = run_main(["train", workspace / "scan.npz", "--out", tmp_path / "run",
                                 "--generator", generator, "--output", output, "--width", "8",
                                 *TINY], capsys)
    assert status == 0, err
    model = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["config"]["model"]
    assert (model["generator"], model["output"], model["width"]) == (generator, output, 8)
    status, out, err = run_main(["info", tmp_path / "run" / "model"], capsys)
    assert status == 0
    assert re.search(rf"^generator +{generator} \(width 8.*\), output {output}$", out, re.M)


def test_reference_recipe_is_one_flag_away():
    def config(argv):
        args = cli.build_parser().parse_args(["train", "data.npz", "--out", "run", *argv])
        return cli.commands.training_config(args)

    default, reference = config([]), config(["--reference-recipe"])
    assert (default.model.n_filters_scale, default.training.learning_rate) == (1, 2e-3)
    assert (reference.model.n_filters_scale, reference.training.learning_rate) == (2, 1e-3)
    assert reference.training.schedule == default.training.schedule == "plateau"
    # the explicit options still win over the recipe
    mixed = config(["--reference-recipe", "--lr", "5e-4", "--set", "model.n_filters_scale=3"])
    assert (mixed.model.n_filters_scale, mixed.training.learning_rate) == (3, 5e-4)
    assert (default.model.projection_steps, reference.model.projection_steps) == (16, 0)
    assert config(["--reference-recipe", "--projection-steps", "4"]).model.projection_steps == 4


def test_reconstruct_projection_steps_override_the_archives(tmp_path, capsys):
    """pinn reconstruct --projection-steps K replaces the archive's model.projection_steps: 0
    gives the network's object as it is, another K another object; a negative K is refused
    with one line and nothing written."""
    data = tmp_path / "scan.npz"
    status, _, err = run_main(["simulate", data, "--object", "grf", "--n-scans", "30",
                               "--size", "64", "--photons", "1e5", "--object-size", "96"],
                              capsys)
    assert status == 0, err
    status, _, err = run_main(["train", data, "--out", tmp_path / "run", *TINY,
                               "--projection-steps", "3", "--projection-blur", "2",
                               "--projection-sync", "5"], capsys)
    assert status == 0, err
    model = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["config"]
    assert (model["model"]["projection_steps"], model["model"]["projection_blur_px"],
            model["model"]["projection_sync_rounds"]) == (3, 2, 5)
    objects = {}
    options = {"default": [], "3": ["--projection-steps", "3"], "0": ["--projection-steps", "0"],
               "blur 2": ["--projection-blur", "2"], "blur 0": ["--projection-blur", "0"],
               "sync 0": ["--projection-sync", "0"]}
    for name, extra in options.items():
        out = tmp_path / f"rec {name}"
        status, _, err = run_main(["reconstruct", tmp_path / "run", data, "--out", out,
                                   "--quiet", *extra], capsys)
        assert status == 0, err
        with np.load(out / "reconstruction.npz") as saved:
            objects[name] = saved["object"]
    # the archive's 3 steps from a 2 px blur, 5 rounds of synchronisation
    assert np.array_equal(objects["default"], objects["3"])
    assert np.array_equal(objects["default"], objects["blur 2"])
    assert not np.allclose(objects["0"], objects["3"])
    assert not np.allclose(objects["blur 0"], objects["blur 2"])
    assert not np.allclose(objects["sync 0"], objects["default"])
    for option, value, message in (("--projection-steps", "-1", "projection_steps is -1"),
                                   ("--projection-blur", "-1", "projection_blur_px is -1"),
                                   ("--projection-sync", "-1", "projection_sync_rounds is -1")):
        status, _, err = run_main(["reconstruct", tmp_path / "run", data, "--out",
                                   tmp_path / "bad", option, value], capsys)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad" / "reconstruction.npz").exists()
