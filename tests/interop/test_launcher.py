"""The pinn-ptychodus launcher: Ptychodus' ModelCore lists and selects pinn once installed, and
``pinn-ptychodus --batch train`` then ``--batch reconstruct`` run end to end on a simulated
product in fresh processes, headless."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.model.core", reason=SKIP_REASON)

from ptychodus.api.io import load_product  # noqa: E402
from ptychodus.model import core  # noqa: E402

from pinn.interop.ptychodus import (  # noqa: E402
    ALGORITHM,
    PinnLibrary,
    PinnReconstructor,
    install,
    read_input_folder,
    write_input_folder,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = """[Processing]
Algorithm = pinn_ptychopinn
[PinnModel]
n_filters_scale = 1
[PinnTraining]
epochs = 1
batch_size = 8
"""


def test_installed_ptychodus_lists_and_selects_pinn(monkeypatch):
    monkeypatch.setattr(core, "ProcessingCore", core.ProcessingCore)  # undone after the test
    install()
    install()  # idempotent: one library, not two
    model = core.ModelCore()
    processing = model.processing_core
    assert isinstance(processing.pinn_library, PinnLibrary)
    assert ALGORITHM == "pinn_ptychopinn" and "_" not in processing.pinn_library.name
    assert list(processing.processing_api.available_reconstructors()).count(ALGORITHM) == 1
    assert processing.algorithm_parameter.get_value() == ALGORITHM
    assert isinstance(processing.algorithm_parameter.get_current_reconstructor(),
                      PinnReconstructor)
    assert processing.processing_api.is_reconstructor_trainable()
    assert processing.processing_api.get_model_file_extension() == ".zip"
    assert {"PinnModel", "PinnTraining", "PinnInference"} <= set(model.settings_registry)


def _run(action, data, out, tmp_path, *, expect=0):
    launcher = Path(sys.executable).parent / "pinn-ptychodus"
    assert launcher.is_file(), f"{launcher} is missing: reinstall pinn (pip install -e .)"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path),
           "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([str(launcher), "--batch", action, "-i", str(data), "-o", str(out)],
                          env=env, capture_output=True, check=False, text=True, timeout=300)
    assert done.returncode == expect, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_batch_train_then_reconstruct_end_to_end(tmp_path, product_and_counts,
                                                 two_component_product_and_counts, options):
    data = tmp_path / "in"
    write_input_folder(data, *product_and_counts)
    (data / "settings.ini").write_text(SETTINGS.replace("[PinnModel]\n",
                                                         "[PinnModel]\nprobe_trainable = true\n"))
    trained = _run("train", data, tmp_path / "trained", tmp_path)
    model = tmp_path / "trained" / "model.zip"
    assert model.is_file(), trained.stdout[-3000:] + trained.stderr[-3000:]
    assert "epoch 1/1" in trained.stderr  # pinn's own progress line, from the training process

    # Ptychodus' batch layout: INPUT/model{extension}; no settings.ini (50 epochs by default)
    # and a probe of 2 OPR components with 2 incoherent modes each
    data = tmp_path / "reconstruct"
    write_input_folder(data, *two_component_product_and_counts)
    shutil.copy(model, data / "model.zip")
    done = _run("reconstruct", data, tmp_path / "reconstructed", tmp_path)
    # Ptychodus names each yielded product after its progress: one pass, whatever the epochs
    (written,) = (tmp_path / "reconstructed").glob("product*.h5")
    assert written.name == "product.000001.h5"
    product = load_product(written)
    # the child's warning about the components, in Ptychodus' log format, on one line
    (line,) = [ln for ln in done.stdout.splitlines() + done.stderr.splitlines()
               if "OPR component" in ln]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[WARNING\] "
                        r"pinn\.interop\.ptychodus\.convert: pinn uses one probe for every "
                        r"scan point: .*\(2 components, 2 incoherent modes each\).*", line), line

    reference = PinnReconstructor(options)
    reference.load_model_from_file(model)
    (expected,) = reference.reconstruct(read_input_folder(data))
    got = product.object_.get_array()
    assert got.shape == (1, 96, 96) and np.abs(got[0, 40:56, 40:56]).min() > 0
    np.testing.assert_allclose(got, expected.product.object_.get_array(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(product.probe_positions.get_coordinates_x_m(),
                                  product_and_counts[0].probe_positions.get_coordinates_x_m())
    # the trained probe, not the input's
    probe, given = product.probes.get_array(), product_and_counts[0].probes.get_array()
    assert probe.shape == (1, 1, 64, 64)
    np.testing.assert_allclose(probe, expected.product.probes.get_array(), rtol=0, atol=1e-6)
    assert not np.allclose(probe, given, rtol=0, atol=1e-4)


def test_batch_reconstruct_with_a_corrupt_model_says_so_in_one_line(tmp_path,
                                                                    product_and_counts):
    """Ptychodus loads INPUT/model.zip outside its error handling: pinn reports it."""
    data = tmp_path / "in"
    write_input_folder(data, *product_and_counts)
    (data / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    done = _run("reconstruct", data, tmp_path / "out", tmp_path, expect=2)
    assert "Traceback" not in done.stdout + done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() + done.stderr.splitlines()
               if "ERROR" in ln]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d [\d:,]+ \[ERROR\] pinn\.interop\.ptychodus\.launcher: "
                        r".*model\.zip is not a readable zip archive.*", line), line
    assert not list((tmp_path / "out").glob("product*"))
