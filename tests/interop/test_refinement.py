"""Refinement after a Ptychodus reconstruction: the ``PinnRefinement`` settings switch it on,
and the product comes back with the refined object, every probe mode and refined positions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.api.reconstruct", reason=SKIP_REASON)

from ptychodus.api.reconstruct import ReconstructInput  # noqa: E402
from ptychodus.api.settings import SettingsRegistry  # noqa: E402

from pinn.archive import Archive  # noqa: E402
from pinn.config import Config, ModelConfig  # noqa: E402
from pinn.interop.ptychodus import (  # noqa: E402
    PinnReconstructor,
    PinnSettings,
    positions_to_pinn,
    product_from_reconstruction,
    product_from_refinement,
    scan_from_input,
)
from pinn.interop.ptychodus.convert import object_frame  # noqa: E402
from pinn.interop.ptychodus.worker import reconstruct_product  # noqa: E402
from pinn.model import build_model  # noqa: E402
from pinn.reconstruct import reconstruct  # noqa: E402
from pinn.refine import RefineConfig, RefineResult  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def archive(reconstruct_input):
    torch.manual_seed(5)
    model = build_model(ModelConfig(n_filters_scale=1),
                        probe=scan_from_input(reconstruct_input).probe, intensity_scale=30.0)
    return Archive(model=model, config=Config(model=model.config))


def with_refine(options, **settings):
    return dataclasses.replace(options, refine=RefineConfig(**settings))


def pinn_positions(product):
    points = product.probe_positions
    return positions_to_pinn(points.get_coordinates_x_m(), points.get_coordinates_y_m(),
                             object_frame(product.object_), product.probes.get_array().shape[-1])


def test_refinement_returns_the_refined_object_all_modes_and_positions(archive,
                                                                      reconstruct_input,
                                                                      options):
    plain = reconstruct_product(archive, reconstruct_input, options)
    refined = reconstruct_product(archive, reconstruct_input, with_refine(
        options, epochs=2, probe_modes=2, refine_positions=True, position_warmup=0,
        position_plateau=None))
    obj = refined.object_.get_array()
    assert obj.shape == plain.object_.get_array().shape == (1, 96, 96)
    assert np.isfinite(obj).all()
    centre = (0, slice(40, 56), slice(40, 56))
    assert np.abs(obj[centre] - plain.object_.get_array()[centre]).max() > 1e-3
    probes = refined.probes.get_array()
    assert probes.shape == (1, 2, 64, 64) and probes.dtype == np.complex64
    power = (np.abs(probes[0]) ** 2).sum(axis=(-2, -1))
    assert power[0] > power[1] > 0  # sorted by power
    given = pinn_positions(reconstruct_input.product)
    moved = pinn_positions(refined)
    assert moved.shape == given.shape
    assert 1e-3 < np.abs(moved - given).max() < 3  # moved, within the per-epoch caps
    assert refined.probe_positions.get_indexes().tolist() == \
        reconstruct_input.product.probe_positions.get_indexes().tolist()


def test_without_position_refinement_the_scan_points_stay(archive, two_mode_product_and_counts,
                                                          options):
    product, diffraction = two_mode_product_and_counts
    inp = ReconstructInput(diffraction.get_patterns(), diffraction.get_bad_pixels(), product)
    refined = reconstruct_product(archive, inp, with_refine(options, epochs=1))
    # the start is every mode of the input probe (the model's probe did not train)
    assert refined.probes.get_array().shape == (1, 2, 64, 64)
    np.testing.assert_array_equal(refined.probe_positions.get_coordinates_x_m(),
                                  product.probe_positions.get_coordinates_x_m())
    np.testing.assert_array_equal(refined.probe_positions.get_coordinates_y_m(),
                                  product.probe_positions.get_coordinates_y_m())


def test_product_from_refinement_converts_back_exactly(archive, reconstruct_input):
    """A refinement result with known positions and modes: the product carries exactly those
    (positions through metres and back), and the object as the network's would be placed."""
    product = reconstruct_input.product
    scan = scan_from_input(reconstruct_input)
    network = reconstruct(archive, scan, progress=False)
    m = scan.n_scans
    shift = torch.linspace(-0.7, 0.9, 2 * m, dtype=torch.float64).reshape(m, 2)
    modes = torch.stack([scan.probe, 0.2 * scan.probe.flip(-1)])  # (2, N, N)
    result = RefineResult(object=network.object, coverage=network.coverage,
                          origin_px=network.origin_px, probe=modes,
                          power_fraction=torch.tensor([0.96, 0.04]),
                          positions=scan.positions + shift, positions_initial=scan.positions)
    out = product_from_refinement(product, result)
    np.testing.assert_allclose(pinn_positions(out), (scan.positions + shift).numpy(),
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(out.probes.get_array()[0], modes.numpy())
    np.testing.assert_array_equal(out.object_.get_array(),
                                  product_from_reconstruction(product, network).object_.get_array())
    kept = product_from_refinement(product, result, positions=False)
    np.testing.assert_array_equal(kept.probe_positions.get_coordinates_x_m(),
                                  product.probe_positions.get_coordinates_x_m())


def test_the_settings_switch_refinement_on_in_the_reconstructor(tmp_path, archive,
                                                                reconstruct_input):
    registry = SettingsRegistry()
    settings = PinnSettings(registry)
    (tmp_path / "settings.ini").write_text("[PinnRefinement]\nepochs = 1\nprobe_modes = 3\n")
    registry.open_settings(tmp_path / "settings.ini")
    reconstructor = PinnReconstructor(settings.options)
    reconstructor._archive = archive  # what load_model_from_file sets
    (output,) = list(reconstructor.reconstruct(reconstruct_input))
    assert output.product.probes.get_array().shape == (1, 3, 64, 64)
    registry["PinnRefinement"].parameters()["epochs"].set_value(0)
    (output,) = list(reconstructor.reconstruct(reconstruct_input))
    assert output.product.probes.get_array().shape == (1, 1, 64, 64)  # off: the input probe
