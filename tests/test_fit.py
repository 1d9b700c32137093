"""Tests of pinn.fit: train_scan on a tiny simulated scan writes a loadable archive with its
provenance, a checkpoint and TensorBoard events; the validation split; size errors; a run
directory is neither replaced nor resumed without being asked to; extending a run."""

from __future__ import annotations

import math

import pytest
import torch

import pinn
from pinn.archive import load_archive, read_manifest
from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import ScanData, load_scan, simulate, write_npz
from pinn.errors import ConfigError, DataError
from pinn.engine import read_training_state
from pinn.fit import file_sha256, run_files, scan_sha256, split_validation, train_scan

CONFIG = Config(model=ModelConfig(n_filters_scale=1),
                training=TrainingConfig(epochs=2, batch_size=8))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "scan.npz"
    write_npz(path, simulate("grf", n_scans=30, size=64, object_size=96, photons=1e5, seed=0))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("fit") / "RUN"
    scan = load_scan(data)
    result = train_scan(scan, CONFIG, out, data_path=data, verbose=False)
    return out, scan, result


def test_writes_archive_checkpoint_and_events(run):
    out, _, result = run
    assert result.archive == out / "model"
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json",
                                                                 "model.safetensors"]
    assert (out / "checkpoints" / "last.safetensors").is_file()
    events = list((out / "tb").glob("*/events.out.tfevents.*"))  # tb/<run id>/
    assert events and all(e.stat().st_size > 0 for e in events)


def test_archive_holds_the_trained_model(run):
    out, _, result = run
    archive = load_archive(out / "model")
    trained, loaded = result.model.state_dict(), archive.model.state_dict()
    assert sorted(trained) == sorted(loaded)
    for key in trained:
        assert torch.equal(trained[key], loaded[key]), key
    assert archive.config == CONFIG
    assert float(archive.model.intensity_scale) == pytest.approx(result.intensity_scale,
                                                                 rel=1e-6)


def test_result_model_is_on_the_cpu_in_eval_mode(run):
    model = run[2].model
    assert not model.training
    assert all(t.device.type == "cpu" for t in model.state_dict().values())


def test_history(run):
    history = run[2].history
    assert len(history) == 2
    assert [h["epoch"] for h in history] == [1, 2]
    for entry in history:
        for key in ("train_loss", "val_loss", "train_deviance", "learning_rate"):
            assert math.isfinite(entry[key]), key


def test_intensity_scale_and_dose(run):
    _, scan, result = run
    # counts data: the dose is measured, and sqrt(nphotons) / (N/2) is the scale
    assert result.nphotons == pytest.approx(scan.measured_nphotons, rel=1e-6)
    assert result.nphotons == pytest.approx(1e5, rel=0.05)
    assert result.intensity_scale == pytest.approx(math.sqrt(result.nphotons) / 32, rel=1e-9)


def test_provenance(run, data):
    out, scan, result = run
    manifest = read_manifest(out / "model")
    provenance = manifest["provenance"]
    assert provenance["data_sha256"] == file_sha256(data)
    assert provenance["data_file"] == str(data)
    assert provenance["epochs_run"] == 2
    assert provenance["stopped_early"] is False
    assert provenance["stop_reason"] == "epochs"
    assert provenance["weights_from_epoch"] == (result.training.restored_epoch or 2)
    assert provenance["plan_changes"] == []
    assert provenance["final_train_loss"] == result.history[-1]["train_loss"]
    assert provenance["final_val_loss"] == result.history[-1]["val_loss"]
    assert provenance["final_train_deviance"] == result.history[-1]["train_deviance"]
    assert provenance["n_positions"] == 30 and provenance["n_groups"] == 30
    assert provenance["nphotons"] == pytest.approx(result.nphotons)
    assert provenance["pinn_version"] == pinn.__version__
    assert provenance["torch_version"] == torch.__version__


def test_without_output_directory_nothing_is_written(run, tmp_path, monkeypatch):
    _, scan, result = run
    monkeypatch.chdir(tmp_path)
    again = train_scan(scan, CONFIG, None, verbose=False)
    assert again.archive is None
    assert list(tmp_path.iterdir()) == []
    # logging and checkpointing do not change what is learnt (same seed, same data)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key


def test_in_memory_scan_is_hashed(tmp_path):
    scan = simulate("grf", n_scans=12, size=64, object_size=80, photons=1e4, seed=1)
    config = Config(model=ModelConfig(n_filters_scale=1),
                    training=TrainingConfig(epochs=1, batch_size=8, log_images=False))
    train_scan(scan, config, tmp_path / "run", verbose=False)
    provenance = read_manifest(tmp_path / "run" / "model")["provenance"]
    assert provenance["data_sha256"] == scan_sha256(scan)
    assert provenance["data_file"] is None
    assert scan_sha256(scan) != scan_sha256(scan.select(torch.arange(11)))


def test_size_mismatch_is_a_data_error_and_writes_nothing(tmp_path):
    scan = simulate("grf", n_scans=8, size=128, object_size=160, photons=1e4, seed=0)
    with pytest.raises(DataError, match=r"128 x 128.*N = 64"):
        train_scan(scan, CONFIG, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


def test_positions_in_other_units_are_refused_before_anything_is_written(tmp_path):
    scan = simulate("grf", n_scans=8, size=64, object_size=96, photons=1e4, seed=0)
    far = ScanData(diffraction=scan.diffraction, positions=scan.positions * 1e6,
                   probe=scan.probe)
    with pytest.raises(DataError, match="not metres or nanometres"):
        train_scan(far, CONFIG, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


def test_too_few_neighbours_for_the_gridsize_name_the_setting(tmp_path):
    scan = simulate("grf", n_scans=12, size=64, object_size=96, photons=1e4, seed=0)
    config = Config(model=ModelConfig(n_filters_scale=1, gridsize=3))
    with pytest.raises(ConfigError, match="data.neighbors is 4, too few for gridsize 3.*>= 8"):
        train_scan(scan, config, tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("n, fraction, n_val", [
    (100, 0.05, 5), (30, 0.05, 1), (10, 0.0, 0), (1, 0.5, 0), (4, 0.9, 3)])
def test_split_validation_holds_out_the_last_groups(n, fraction, n_val):
    train, val = split_validation(n, fraction)
    assert len(val) == n_val and len(train) == n - n_val >= 1
    assert torch.equal(torch.cat([train, val]), torch.arange(n))


def test_file_sha256(tmp_path):
    import hashlib

    data = bytes(range(256)) * 5000  # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# --- what a run directory allows ----------------------------------------------------------------

TINY = Config(model=ModelConfig(n_filters_scale=1),
              training=TrainingConfig(epochs=1, batch_size=8, log_images=False))


@pytest.fixture
def tiny_scan():
    return simulate("grf", n_scans=12, size=64, object_size=80, photons=1e4, seed=1)


def snapshot(directory):
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_finished_run_is_not_replaced_unless_asked(tmp_path, tiny_scan):
    train_scan(tiny_scan, TINY, tmp_path / "run", verbose=False)
    before = snapshot(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"already holds a trained model.*--resume.*--overwrite"):
        train_scan(tiny_scan, TINY, tmp_path / "run", verbose=False)
    assert snapshot(tmp_path / "run") == before  # nothing touched
    replaced = train_scan(tiny_scan, TINY, tmp_path / "run", overwrite=True, verbose=False)
    assert len(replaced.history) == 1
    assert len(list((tmp_path / "run" / "tb").iterdir())) == 2  # each run's logs apart


def test_an_interrupted_run_is_not_restarted_unless_asked(tmp_path, tiny_scan):
    train_scan(tiny_scan, TINY, tmp_path / "run", verbose=False)
    files = run_files(tmp_path / "run")
    import shutil

    shutil.rmtree(files.model)  # as if killed before the archive was written
    before = snapshot(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds an unfinished run"):
        train_scan(tiny_scan, TINY, tmp_path / "run", verbose=False)
    assert snapshot(tmp_path / "run") == before


def test_resume_with_nothing_to_resume_is_refused(tmp_path, tiny_scan):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train_scan(tiny_scan, TINY, tmp_path / "run", resume=True, verbose=False)
    assert not (tmp_path / "run" / "model").exists()


def test_resume_and_overwrite_exclude_each_other(tmp_path, tiny_scan):
    with pytest.raises(ConfigError, match="exclude each other"):
        train_scan(tiny_scan, TINY, tmp_path / "run", resume=True, overwrite=True,
                   verbose=False)
    assert not (tmp_path / "run").exists()


def test_extending_a_finished_run_through_fit(tmp_path, tiny_scan):
    """1 epoch, then resume with 2: the archive of a 2-epoch run, with the change recorded."""
    two = Config(model=TINY.model, training=TrainingConfig(epochs=2, batch_size=8,
                                                           log_images=False))
    longer = train_scan(tiny_scan, two, tmp_path / "a", verbose=False)
    train_scan(tiny_scan, TINY, tmp_path / "b", verbose=False)
    extended = train_scan(tiny_scan, two, tmp_path / "b", resume=True, verbose=False)
    for key, value in longer.model.state_dict().items():
        assert torch.equal(value, extended.model.state_dict()[key]), key
    change = {"epoch": 1, "field": "epochs", "old": 1, "new": 2}
    assert read_training_state(run_files(tmp_path / "b").checkpoints).changes == [change]
    provenance = read_manifest(tmp_path / "b" / "model")["provenance"]
    assert provenance["epochs_run"] == 2 and provenance["plan_changes"] == [change]
    # any other change is refused, naming the field
    other = Config(model=TINY.model, training=TrainingConfig(epochs=3, batch_size=4))
    with pytest.raises(ConfigError, match=r"training\.batch_size was 8 and is now 4"):
        train_scan(tiny_scan, other, tmp_path / "b", resume=True, verbose=False)
    wider = Config(model=ModelConfig(n_filters_scale=2), training=two.training)
    with pytest.raises(ConfigError, match=r"run_info\.model\.n_filters_scale was 1, now 2"):
        train_scan(tiny_scan, wider, tmp_path / "b", resume=True, verbose=False)
