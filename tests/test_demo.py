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
from pinn.demo import QUICK, _verdict, run_demo
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
                 "run/checkpoints/last.safetensors"):
        assert (out / name).is_file(), name
    assert list((out / "run" / "tb").glob("events.out.tfevents.*"))
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
    assert f"trained for {QUICK.epochs} epochs" in text


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
