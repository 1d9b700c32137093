"""PinnReconstructor as Ptychodus drives it: export, one-epoch training from an exported NPZ,
training from a diffraction.h5 + product.h5 folder with one output per epoch, reconstruction
(in-process and in a fresh process), the single-file model round trip, and the refusals."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import zipfile

import numpy as np
import pytest
import torch
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.api.reconstruct", reason=SKIP_REASON)

from ptychodus.api.reconstruct import TrainableReconstructor  # noqa: E402

from pinn import ops  # noqa: E402
from pinn.archive import Archive, load_archive, read_manifest  # noqa: E402
from pinn.config import Config, DataConfig, ModelConfig  # noqa: E402
from pinn.data import load_scan  # noqa: E402
from pinn.errors import ArchiveError, DataError  # noqa: E402
from pinn.interop.ptychodus import (  # noqa: E402
    PinnReconstructor,
    product_from_reconstruction,
    scan_from_input,
    write_input_folder,
)
from pinn.interop.ptychodus.worker import reconstruct_product  # noqa: E402
from pinn.model import build_model  # noqa: E402
from pinn.reconstruct import reconstruct  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, reconstruct_input, options):
    """A reconstructor trained for one epoch on the exported NPZ, and its outputs."""
    folder = tmp_path_factory.mktemp("npz")
    reconstructor = PinnReconstructor(options)
    reconstructor.export_training_data(folder / "train.npz", reconstruct_input)
    outputs = list(reconstructor.train(folder / "train.npz", folder / "out"))
    return reconstructor, outputs, folder


def test_is_a_ptychodus_trainable_reconstructor(options):
    reconstructor = PinnReconstructor(options)
    assert isinstance(reconstructor, TrainableReconstructor)
    assert reconstructor.name == "PtychoPINN" and reconstructor.get_progress_goal() == 1
    assert reconstructor.get_model_file_extension() == ".zip"
    assert "*.zip" in reconstructor.get_model_file_filter()
    assert "*.npz" in reconstructor.get_training_data_file_filter()
    assert not reconstructor.is_model_loaded()


@pytest.mark.parametrize("modes", [1, 2])
def test_export_writes_the_input_as_a_pinn_scan(tmp_path, reconstruct_input,
                                                two_mode_product_and_counts, options, modes):
    from ptychodus.api.reconstruct import ReconstructInput

    inp = reconstruct_input
    if modes == 2:
        product, diffraction = two_mode_product_and_counts
        inp = ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product)
    PinnReconstructor(options).export_training_data(tmp_path / "exported", inp)
    assert not (tmp_path / "exported.npz").exists()  # the path is used as given
    exported, expected = load_scan(tmp_path / "exported"), scan_from_input(inp)
    torch.testing.assert_close(exported.diffraction, expected.diffraction, rtol=0, atol=0)
    torch.testing.assert_close(exported.positions, expected.positions, rtol=0, atol=0)
    torch.testing.assert_close(exported.probe, expected.probe, rtol=0, atol=0)
    assert exported.probe.shape == ((64, 64) if modes == 1 else (2, 64, 64))
    assert exported.counts


def test_one_epoch_training_yields_the_losses_and_loads_the_model(trained):
    reconstructor, outputs, folder = trained
    assert [o.progress for o in outputs] == [1]
    (training,), (validation,) = outputs[0].training_loss, outputs[0].validation_loss
    assert training.epoch == 1 and math.isfinite(training.value)
    assert validation.epoch == 1 and math.isfinite(validation.value)
    assert reconstructor.is_model_loaded()
    manifest = read_manifest(folder / "out" / "model.zip")
    assert manifest["config"]["model"]["size_px"] == 64
    assert manifest["config"]["model"]["n_filters_scale"] == 1
    assert manifest["provenance"]["final_train_loss"] == pytest.approx(training.value)
    assert (folder / "out" / "pinn-training" / "checkpoints" / "last.safetensors").is_file()


def test_training_from_an_h5_folder_yields_every_epoch(tmp_path, product_and_counts, options):
    write_input_folder(tmp_path, *product_and_counts)
    two = dataclasses.replace(options, config=dataclasses.replace(
        options.config, training=dataclasses.replace(options.config.training, epochs=2,
                                                     early_stopping_patience=0)))
    reconstructor = PinnReconstructor(two)
    outputs = list(reconstructor.train(tmp_path, tmp_path / "out"))
    assert [o.progress for o in outputs] == [1, 2]
    assert [[v.epoch for v in o.training_loss] for o in outputs] == [[1], [1, 2]]
    assert outputs[0].training_loss[0] == outputs[1].training_loss[0]
    history = read_manifest(tmp_path / "out" / "model.zip")["provenance"]
    assert history["epochs_run"] == 2
    assert history["final_train_loss"] == pytest.approx(outputs[1].training_loss[1].value)
    assert reconstructor.is_model_loaded()


def test_reconstruct_gives_the_stitched_object_in_the_product(trained, reconstruct_input,
                                                                options):
    reconstructor, _, _ = trained
    (output,) = list(reconstructor.reconstruct(reconstruct_input))
    assert output.progress == reconstructor.get_progress_goal() and output.status == 0
    model = reconstructor.archive.model
    expected = product_from_reconstruction(
        reconstruct_input.product,
        reconstruct(model, scan_from_input(reconstruct_input), progress=False))
    array = output.product.object_.get_array()
    np.testing.assert_array_equal(array, expected.object_.get_array())
    assert array.shape == (1, 96, 96) and np.isfinite(array).all()
    assert np.abs(array[0, 40:56, 40:56]).min() > 0  # the scanned centre is reconstructed


def test_reconstruction_groups_as_the_archive_says(reconstruct_input, options):
    """Grouping options come from the archive (how the model was trained), not the settings."""
    model = build_model(ModelConfig(gridsize=2, n_filters_scale=1))
    archive = Archive(model=model, config=Config(model=model.config,
                                                 data=DataConfig(neighbors=7, grouping_seed=3)))
    got = reconstruct_product(archive, reconstruct_input, options).object_.get_array()
    scan = scan_from_input(reconstruct_input)
    expected = product_from_reconstruction(reconstruct_input.product, reconstruct(
        model, scan, neighbors=7, seed=3, progress=False)).object_.get_array()
    settings_grouping = product_from_reconstruction(reconstruct_input.product, reconstruct(
        model, scan, neighbors=options.config.data.neighbors, seed=0,
        progress=False)).object_.get_array()
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, settings_grouping)
    api = product_from_reconstruction(reconstruct_input.product, reconstruct(
        archive, scan, progress=False)).object_.get_array()
    np.testing.assert_array_equal(got, api)  # the Python API groups as Ptychodus does


def test_isolated_reconstruction_equals_in_process(trained, reconstruct_input, options,
                                                   tmp_path):
    reconstructor, _, folder = trained
    isolated = PinnReconstructor(options, isolate=True)
    isolated.load_model_from_file(folder / "out" / "model.zip")
    (theirs,) = list(isolated.reconstruct(reconstruct_input))
    (ours,) = list(reconstructor.reconstruct(reconstruct_input))
    np.testing.assert_array_equal(theirs.product.object_.get_array(),
                                  ours.product.object_.get_array())


@pytest.mark.parametrize("name", ["copy.zip", "copy.pinn"])
def test_save_and_load_round_trip(trained, tmp_path, reconstruct_input, options, name):
    reconstructor, _, folder = trained
    reconstructor.save_model(tmp_path / name)
    assert zipfile.is_zipfile(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left behind
    loaded = PinnReconstructor(options)
    loaded.load_model_from_file(tmp_path / name)
    original = load_archive(folder / "out" / "model.zip")
    for key, value in original.model.state_dict().items():
        assert torch.equal(loaded.archive.model.state_dict()[key], value), key
    assert loaded.archive.config == original.config
    assert read_manifest(tmp_path / name)["provenance"]["epochs_run"] == 1
    (a,), (b,) = loaded.reconstruct(reconstruct_input), reconstructor.reconstruct(
        reconstruct_input)
    np.testing.assert_array_equal(a.product.object_.get_array(), b.product.object_.get_array())


def test_closing_the_training_generator_stops_the_training_process(tmp_path, trained,
                                                                   options):
    _, _, folder = trained
    long = dataclasses.replace(options, config=dataclasses.replace(
        options.config, training=dataclasses.replace(options.config.training, epochs=500,
                                                     early_stopping_patience=0)))
    reconstructor = PinnReconstructor(long)
    outputs = reconstructor.train(folder / "train.npz", tmp_path / "out")
    assert next(outputs).progress == 1
    outputs.close()
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("pinn-")]
    assert not (tmp_path / "out" / "model.zip").exists()
    assert not reconstructor.is_model_loaded()


def test_refusals(tmp_path, reconstruct_input, options):
    reconstructor = PinnReconstructor(options)
    with pytest.raises(ArchiveError, match="no pinn model is loaded"):
        list(reconstructor.reconstruct(reconstruct_input))
    with pytest.raises(ArchiveError, match="no pinn model is loaded"):
        reconstructor.save_model(tmp_path / "m.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ArchiveError):
        reconstructor.load_model_from_file(tmp_path / "junk.zip")
    with pytest.raises(DataError, match="no training data"):
        list(reconstructor.train(tmp_path / "missing", tmp_path / "out"))
    (tmp_path / "two").mkdir()
    for name in ("a.npz", "b.npz"):
        (tmp_path / "two" / name).write_bytes(b"")
    with pytest.raises(DataError, match="2 .npz files"):
        list(reconstructor.train(tmp_path / "two", tmp_path / "out"))
    assert not reconstructor.is_model_loaded()
    (tmp_path / "garbage.npz").write_bytes(b"not an npz")  # refused inside the training process
    with pytest.raises(DataError, match="garbage.npz"):
        list(reconstructor.train(tmp_path / "garbage.npz", tmp_path / "out"))
    assert not reconstructor.is_model_loaded()
    big = build_model(ModelConfig(size_px=128, n_filters_scale=1))
    with pytest.raises(DataError, match="trained on 128 x 128"):
        reconstruct_product(Archive(model=big, config=Config(model=big.config)),
                            reconstruct_input, options)


def test_a_reconstruction_counts_one_pass_whatever_the_epochs(trained, reconstruct_input,
                                                              options):
    """Ptychodus names the saved product after ``progress``: 50 default epochs once wrote
    product.000050.h5 for a single pass."""
    _, _, folder = trained
    fifty = dataclasses.replace(options, config=dataclasses.replace(
        options.config, training=dataclasses.replace(options.config.training, epochs=50)))
    reconstructor = PinnReconstructor(fifty)
    reconstructor.load_model_from_file(folder / "out" / "model.zip")
    assert reconstructor.get_progress_goal() == 50  # the goal of a training
    outputs = reconstructor.reconstruct(reconstruct_input)
    output = next(outputs)
    assert (output.progress, reconstructor.get_progress_goal()) == (1, 1)
    assert list(outputs) == []
    assert reconstructor.get_progress_goal() == 50


def _probe_model(reconstruct_input, *, trainable):
    model = build_model(ModelConfig(n_filters_scale=1, probe_trainable=trainable),
                        probe=scan_from_input(reconstruct_input).probe)
    return Archive(model=model, config=Config(model=model.config))


def test_a_trained_probe_comes_back_in_the_input_probe_units(reconstruct_input, options):
    given = reconstruct_input.product.probes.get_array()  # (1, 1, N, N)
    archive = _probe_model(reconstruct_input, trainable=True)
    untrained = reconstruct_product(archive, reconstruct_input, options).probes.get_array()
    np.testing.assert_allclose(untrained, given, rtol=0, atol=1e-6 * np.abs(given).max())

    with torch.no_grad():  # what training does to the probe: here a phase ramp and a gain
        ramp = torch.polar(torch.full((64, 64), 1.3), torch.linspace(0, 2, 64).expand(64, 64))
        archive.model.probe_real.copy_(torch.view_as_real(archive.model.probe * ramp))
    got = reconstruct_product(archive, reconstruct_input, options).probes.get_array()
    # normalize_probe divided the input by probe_scale * mean(|input * disk|): undo that
    disk = ops.disk_mask(64).numpy()
    factor = archive.config.model.probe_scale * np.abs(given[0, 0] * disk).mean()
    expected = archive.model.probe.detach().numpy() * factor
    assert got.shape == (1, 1, 64, 64) and got.dtype == np.complex64
    np.testing.assert_allclose(got[0, 0], expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    assert np.abs(got - given).max() > 0.1 * np.abs(given).max()


@pytest.mark.parametrize("modes", [2, 3])
def test_trained_probe_modes_come_back_in_the_input_probe_units(two_mode_product_and_counts,
                                                                options, modes):
    """A model with K modes built from the 2-mode input probe: untrained, the product gets the
    input's modes back (and an added third mode in the same units); trained, every mode keeps
    its change."""
    from ptychodus.api.reconstruct import ReconstructInput

    product, diffraction = two_mode_product_and_counts
    inp = ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product)
    given = product.probes.get_array()  # (1, 2, N, N)
    model = build_model(ModelConfig(n_filters_scale=1, probe_trainable=True, probe_modes=modes),
                        probe=scan_from_input(inp).probe)
    archive = Archive(model=model, config=Config(model=model.config))
    got = reconstruct_product(archive, inp, options).probes.get_array()
    assert got.shape == (1, modes, 64, 64) and got.dtype == np.complex64
    scale = np.abs(given).max()
    if modes == 2:
        np.testing.assert_allclose(got, given, rtol=0, atol=1e-6 * scale)
    else:  # the input's power is shared out: 2 % to the added mode, the rest kept in ratio
        keep = np.sqrt(0.98)
        np.testing.assert_allclose(got[:, :2], keep * given, rtol=0, atol=1e-6 * scale)
        power = np.abs(got) ** 2
        assert power[0, 2].sum() == pytest.approx(0.02 * (np.abs(given) ** 2).sum(), rel=1e-4)
    with torch.no_grad():
        archive.model.probe_real.mul_(1.5)
    trained = reconstruct_product(archive, inp, options).probes.get_array()
    np.testing.assert_allclose(trained, 1.5 * got, rtol=0, atol=1e-6 * scale)


def test_a_fixed_probe_stays_the_input_probe(reconstruct_input, two_mode_product_and_counts,
                                             options):
    from ptychodus.api.reconstruct import ReconstructInput

    product, diffraction = two_mode_product_and_counts
    inp = ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product)
    archive = _probe_model(inp, trainable=False)
    with torch.no_grad():
        archive.model.probe_real.mul_(2.0)
    got = reconstruct_product(archive, inp, options).probes.get_array()
    np.testing.assert_array_equal(got, product.probes.get_array())  # both modes, unchanged
