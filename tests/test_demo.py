"""Tests of pinn.demo: the quick demo writes its data, model, reconstruction, figures, metrics
and a report that states the numbers it measured."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from pinn.archive import load_archive
from pinn.data import load_scan
from pinn.demo import QUICK, _refinement_verdict, _report, _verdict, run_demo, summary
from pinn.errors import ConfigError
from pinn.evaluate import evaluate_files
from test_plotting import decode_png


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = run_demo(out, quick=True, verbose=False)
    return out, report


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def test_writes_every_file(demo):
    out, report = demo
    assert report == out / "report.md"
    for name in ("report.md", "metrics.json", "data.npz", "amplitude_vs_truth.png",
                 "phase_vs_truth.png", "training_curve.png", "reconstruction/reconstruction.npz",
                 "reconstruction/amplitude.png", "reconstruction/phase.png",
                 "run/model/config.json", "run/model/model.safetensors",
                 "run/checkpoints/last.safetensors", "refined_phase_vs_truth.png",
                 "refined/reconstruction.npz", "refined/report.md", "refined/metrics.json",
                 "refined/probe_modes.png"):
        assert (out / name).is_file(), name
    assert list((out / "run" / "tb").glob("*/events.out.tfevents.*"))
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".partial", ".old"))]
    assert leftovers == []


def test_outputs_are_consistent(demo):
    out, _ = demo
    scan = load_scan(out / "data.npz")
    assert scan.n_scans == QUICK.n_scans and scan.object.shape == (QUICK.object_size_px,) * 2
    archive = load_archive(out / "run" / "model")
    assert archive.config.training.epochs == QUICK.epochs
    assert archive.manifest["provenance"]["epochs_run"] == QUICK.epochs
    metrics = json.loads((out / "metrics.json").read_text())
    again = evaluate_files(out / "reconstruction" / "reconstruction.npz", out / "data.npz")
    assert set(again) == set(metrics)
    for key, value in again.items():
        assert value == pytest.approx(metrics[key], rel=1e-9, nan_ok=True), key
    for name in ("amplitude_vs_truth.png", "phase_vs_truth.png"):
        height, width = png_size(out / name)
        assert width > height > 100  # two figures side by side


def test_report_states_the_measured_numbers_and_shows_the_images(demo):
    out, report = demo
    text = report.read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    amplitude = re.search(r"^\| amplitude \| ([-\d.]+) \| ([-\d.inf]+) \|", text, re.M)
    phase = re.search(r"^\| phase \| ([-\d.]+) \| ([-\d.inf]+) \|", text, re.M)
    assert amplitude and phase, text
    assert float(amplitude.group(1)) == pytest.approx(metrics["amplitude_ssim"], abs=5e-4)
    assert float(phase.group(1)) == pytest.approx(metrics["phase_ssim"], abs=5e-4)
    assert float(amplitude.group(2)) == pytest.approx(metrics["amplitude_psnr"], abs=5e-3)
    assert "![amplitude](amplitude_vs_truth.png)" in text
    assert "![phase](phase_vs_truth.png)" in text
    assert "![training curve](training_curve.png)" in text
    assert "SSIM" in text
    epochs = re.findall(r"^\| (\d+) \| [-\d.e+]+ \|", text, re.M)
    assert epochs == [str(e) for e in range(1, QUICK.epochs + 1)]
    assert f"trained for {QUICK.epochs} epoch on" in text  # QUICK.epochs is 1: no "1 epochs"


def test_reconstruction_covers_the_scan(demo):
    out, _ = demo
    with np.load(out / "reconstruction" / "reconstruction.npz") as data:
        coverage = data["coverage"]
        assert (coverage > 0).mean() > 0.5
        assert np.isfinite(data["object"]).all()


def test_bad_device_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="device"):
        run_demo(tmp_path / "out", device="tpu9", quick=True, verbose=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("ssim, words", [
    (0.95, "close to the truth"), (0.9, "close to the truth"), (0.85, "good"),
    (0.7, "recognisable"), (0.59, "poor"), (float("nan"), "poor")])
def test_verdict(ssim, words):
    assert words in _verdict(ssim)


def test_the_training_curve_is_plotted(demo, tmp_path):
    """The report promises a training curve: a PNG with one line per deviance."""
    from pinn.demo import save_training_curve
    from pinn.plotting import CURVE_COLOURS

    out, _ = demo
    height, width = png_size(out / "training_curve.png")
    assert height > 200 and width > 400
    history = [{"epoch": e, "train_deviance": 10.0 / e, "val_deviance": 12.0 / e}
               for e in range(1, 21)]
    path = save_training_curve(tmp_path / "curve.png", history)
    pixels = decode_png(path.read_bytes())
    for colour in CURVE_COLOURS[:2]:  # training and validation drawn, each in its colour
        drawn = np.all(pixels == colour, axis=-1)
        assert drawn.sum() > 300, colour


def comparison_row(text, label):
    """(amplitude SSIM, phase SSIM, amplitude PSNR, phase PSNR) of a row of the report's
    'Network, then refinement' table."""
    match = re.search(rf"^\| {re.escape(label)} \| ([-\d.]+) \| ([-\d.]+) \| ([-\d.inf]+) \| "
                      r"([-\d.inf]+) \|", text, re.M)
    assert match, (label, text)
    return tuple(float(g) for g in match.groups())


def test_report_shows_the_network_alone_and_followed_by_refinement(demo):
    out, report = demo
    text = report.read_text()
    comparison = json.loads((out / "refined" / "metrics.json").read_text())
    assert set(comparison) == {"network_alone", "network", "network_refined", "flat_refined"}
    assert QUICK.projection_steps > 0  # the model's reconstruction has projection steps
    # the network's row is metrics.json; the refined one is what pinn evaluate says of the file
    assert comparison["network"] == json.loads((out / "metrics.json").read_text())
    again = evaluate_files(out / "refined" / "reconstruction.npz", out / "data.npz")
    for key in ("amplitude_ssim", "phase_ssim", "phase_psnr"):
        assert again[key] == pytest.approx(comparison["network_refined"][key], rel=1e-6), key
    epochs = QUICK.refine_epochs
    for label, key in (("network alone, no projection steps or passes", "network_alone"),
                       ("network + projection steps and passes (the model's reconstruction)",
                        "network"),
                       (f"network + {epochs} refinement epochs", "network_refined"),
                       (f"{epochs} refinement epochs from a flat object", "flat_refined")):
        m = comparison[key]
        row = comparison_row(text, label)
        assert row == pytest.approx((m["amplitude_ssim"], m["phase_ssim"], m["amplitude_psnr"],
                                     m["phase_psnr"]), abs=5e-3), label
    assert "![refined phase](refined_phase_vs_truth.png)" in text
    assert re.search(r"^\| refine \| [\d.]+ \|", text, re.M)  # its time is reported
    with np.load(out / "refined" / "reconstruction.npz") as data:
        deviance = data["deviance"]
        assert data["probe"].shape == (1, 64, 64)
    # (the network's object, with its projection steps, already fits the patterns about as
    # well as two epochs of refinement do, so the deviance need not fall between them)
    assert deviance.shape == (epochs,) and np.isfinite(deviance).all() and (deviance > 0).all()
    assert "network's stitched object before the passes" in (
        out / "refined" / "report.md").read_text()
    assert f"took {QUICK.projection_steps} projection steps" in text
    assert "passes of error reduction over the whole scan" in text


def metrics(amp, phase):
    return {"amplitude_ssim": amp, "phase_ssim": phase, "amplitude_psnr": 20 + amp,
            "phase_psnr": 21 + phase, "amplitude_frc_half_bit": 0.1, "phase_frc_half_bit": 0.1}


TIMINGS = {"simulate_s": 1.0, "train_s": 200.0, "reconstruct_s": 2.5, "refine_s": 1.25,
           "refine_flat_s": 1.5, "total_s": 210.0}


def test_summary_and_report_state_both_results_with_their_times():
    comparison = {"network": metrics(0.811, 0.822), "network_refined": metrics(0.951, 0.962),
                  "flat_refined": metrics(0.931, 0.912)}
    lines = summary(comparison, TIMINGS, 10).splitlines()
    assert len(lines) == 3
    assert "network alone" in lines[0] and "0.811" in lines[0] and "0.822" in lines[0]
    assert "200 s training" in lines[0] and "2.50 s reconstruction" in lines[0]
    assert "network + 10 refinement epochs" in lines[1] and "0.962" in lines[1]
    assert "1.25 s refinement" in lines[1] and "PSNR 21.0 dB" in lines[1]
    assert "from a flat object" in lines[2] and "1.50 s" in lines[2]
    history = [{"epoch": 1, "train_loss": 1.0, "learning_rate": 1e-3, "seconds": 2.0}]
    text = _report(QUICK, history, comparison["network"], TIMINGS, {
        "npz": out_path("reconstruction.npz"), "amplitude": out_path("amplitude.png"),
        "phase": out_path("phase.png")}, comparison)
    assert comparison_row(text, "network alone") == pytest.approx((0.811, 0.822, 20.811, 21.822),
                                                           abs=5e-3)
    assert comparison_row(text, f"network + {QUICK.refine_epochs} refinement epochs") == \
        pytest.approx((0.951, 0.962, 20.951, 21.962), abs=5e-3)
    assert "the network's object was the better start" in text


def out_path(name):
    from pathlib import Path
    return Path("reconstruction") / name


@pytest.mark.parametrize("network, refined, flat, words", [
    (0.8, 0.95, 0.90, ["raised", "the network's object was the better start"]),
    (0.8, 0.90, 0.95, ["raised", "did not help"]),
    (0.8, 0.905, 0.90, ["raised", "ended level"]),
    (0.9, 0.5, 0.5, ["lowered", "ended level"]),
    (0.9, 0.905, 0.6, ["hardly changed", "better start"]),
])
def test_refinement_verdict_follows_the_numbers(network, refined, flat, words):
    text = _refinement_verdict({"network": metrics(0, network),
                                "network_refined": metrics(0, refined),
                                "flat_refined": metrics(0, flat)})
    for word in words:
        assert word in text
    assert f"{refined:.3f}" in text and f"{flat:.3f}" in text


def test_summary_puts_the_network_alone_before_the_models_reconstruction():
    comparison = {"network_alone": metrics(0.411, 0.422), "network": metrics(0.811, 0.822),
                  "network_refined": metrics(0.951, 0.962), "flat_refined": metrics(0.931, 0.912)}
    timings = {**TIMINGS, "reconstruct_network_alone_s": 0.75}
    lines = summary(comparison, timings, 10).splitlines()
    assert len(lines) == 4
    assert "network alone, no projection steps or passes" in lines[0] and "0.411" in lines[0]
    assert "0.75 s reconstruction" in lines[0]
    assert "projection steps and passes (the model's reconstruction)" in lines[1]
    assert "0.822" in lines[1]
    assert "200 s training" in lines[1]
