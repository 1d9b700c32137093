"""Conversions between Ptychodus inputs/products and pinn scans/reconstructions: round trips,
agreement with Ptychodus' own forward model, the h5 folder layout, and the refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _ptychodus_helpers import PIXEL_M, SKIP_REASON

pytest.importorskip("ptychodus.api.reconstruct", reason=SKIP_REASON)

from ptychodus.api.geometry import PixelGeometry  # noqa: E402
from ptychodus.api.object import Object  # noqa: E402
from ptychodus.api.probe import ProbeSequence  # noqa: E402
from ptychodus.api.product import Product  # noqa: E402
from ptychodus.api.reconstruct import ReconstructInput  # noqa: E402
from ptychodus.api.simulate.diffraction import generate_diffraction_data  # noqa: E402

from pinn.data import ScanData, make_object, make_probe, simulate_scan  # noqa: E402
from pinn.errors import DataError  # noqa: E402
from pinn.interop.ptychodus import (  # noqa: E402
    product_from_reconstruction,
    product_from_scan,
    read_input_folder,
    scan_from_input,
    write_input_folder,
)
from pinn.reconstruct import Reconstruction  # noqa: E402


def _assert_same_scan(a, b):
    torch.testing.assert_close(a.diffraction, b.diffraction, rtol=0, atol=0)
    torch.testing.assert_close(a.positions, b.positions, rtol=0, atol=1e-9)
    torch.testing.assert_close(a.probe, b.probe, rtol=0, atol=0)
    torch.testing.assert_close(a.object, b.object, rtol=0, atol=0)
    assert a.counts and b.counts


def test_scan_to_product_and_back_is_the_same_scan(scan, reconstruct_input):
    _assert_same_scan(scan_from_input(reconstruct_input), scan)


def test_product_layout(scan, product_and_counts):
    product, diffraction = product_and_counts
    assert product.probes.get_array().shape == (1, 1, 64, 64)
    assert product.object_.get_array().shape == (1, 96, 96)
    assert product.object_.get_pixel_geometry() == PixelGeometry(PIXEL_M, PIXEL_M)
    np.testing.assert_array_equal(product.probe_positions.get_indexes(), np.arange(30))
    assert diffraction.get_patterns().dtype == np.int32
    np.testing.assert_array_equal(diffraction.get_patterns(),
                                  np.rint(scan.diffraction.double().square().numpy()))
    assert not diffraction.get_bad_pixels().any()


def test_pinn_forward_model_matches_ptychodus_simulator():
    """Ptychodus' simulator on the converted product gives pinn's patterns (up to the dose):
    the metres -> pixel rule, the half-pixel window offset and the centred FFT agree. Integer
    pinn positions keep both free of subpixel interpolation, whose methods differ."""
    obj, probe = make_object("grf", 128, seed=1), make_probe("default", 64)
    positions = torch.tensor([[40.0, 50.0], [61.0, 70.0], [70.0, 45.0]], dtype=torch.float64)

    def mismatch(pinn_positions):
        pinn_scan = simulate_scan(obj, probe, pinn_positions, 1e6, noise=False)
        theirs = generate_diffraction_data(product).get_patterns()
        ours = pinn_scan.diffraction.double().square().numpy()
        theirs, ours = (p / p.sum(axis=(1, 2), keepdims=True) for p in (theirs, ours))
        return np.abs(theirs - ours).max() / ours.max()

    truth = simulate_scan(obj, probe, positions, 1e6, noise=False)
    product, _ = product_from_scan(truth, pixel_size_m=PIXEL_M, detector_distance_m=20.0)
    assert mismatch(positions) < 1e-4
    assert mismatch(positions - 0.5) > 1e-3  # without the half-pixel rule they disagree


def test_the_input_folder_round_trips_through_ptychodus_files(tmp_path, scan,
                                                              product_and_counts):
    paths = write_input_folder(tmp_path / "data", *product_and_counts)
    assert sorted(p.name for p in paths.values()) == ["diffraction.h5", "product.h5"]
    _assert_same_scan(scan_from_input(read_input_folder(tmp_path / "data")), scan)


def test_reading_a_folder_without_both_files_is_refused(tmp_path, product_and_counts):
    paths = write_input_folder(tmp_path, *product_and_counts)
    paths["product"].unlink()
    with pytest.raises(DataError, match="product.h5"):
        read_input_folder(tmp_path)


def test_every_mode_of_the_first_opr_component_is_used(caplog, reconstruct_input):
    product = reconstruct_input.product
    modes = np.stack([product.probes.get_array()[0, 0] * k for k in (1, 2, 3)])[None]
    probes = ProbeSequence(array=np.concatenate([modes, 5 * modes]), opr_weights=None,
                           pixel_geometry=product.probes.get_pixel_geometry())
    with caplog.at_level(logging.WARNING):
        scan = scan_from_input(_with(reconstruct_input, probes=probes))
    torch.testing.assert_close(scan.probe, torch.from_numpy(modes[0]).to(torch.complex64),
                               rtol=0, atol=0)  # (3, N, N)
    assert "OPR component 0" in caplog.text and "\n" not in caplog.text.strip()
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # one component of three modes: nothing to say
        scan = scan_from_input(_with(reconstruct_input, probes=ProbeSequence(
            array=modes, opr_weights=None, pixel_geometry=product.probes.get_pixel_geometry())))
    assert scan.probe.shape == (3, 64, 64) and caplog.text == ""


def test_probe_modes_go_to_a_product_and_back(scan):
    g = torch.Generator().manual_seed(2)
    modes = torch.stack([scan.probe, 0.3 * scan.probe * torch.randn(64, 64, generator=g)])
    with_modes = ScanData(diffraction=scan.diffraction, positions=scan.positions, probe=modes,
                          object=scan.object, counts=True)
    product, diffraction = product_from_scan(with_modes, pixel_size_m=PIXEL_M)
    assert product.probes.get_array().shape == (1, 2, 64, 64)
    back = scan_from_input(ReconstructInput(diffraction.get_patterns(),
                                            diffraction.get_bad_pixels(), product))
    _assert_same_scan(back, with_modes)


def test_reconstruction_carries_probe_modes(reconstruct_input):
    product = reconstruct_input.product
    result = Reconstruction(object=torch.ones(10, 10, dtype=torch.complex64),
                            coverage=torch.ones(10, 10), origin_px=(0, 0), crop_px=32,
                            n_positions=30, n_groups=30)
    modes = np.arange(3 * 64 * 64).reshape(3, 64, 64).astype(np.complex64)
    out = product_from_reconstruction(product, result, modes)
    np.testing.assert_array_equal(out.probes.get_array(), modes[None])  # (1, 3, N, N)
    single = product_from_reconstruction(product, result, modes[1])
    np.testing.assert_array_equal(single.probes.get_array(), modes[None, 1:2])
    for bad in (modes[:, :32, :32], modes[:0]):
        with pytest.raises(DataError, match="the probe to return has shape"):
            product_from_reconstruction(product, result, bad)


def test_refuses_inputs_pinn_cannot_use(reconstruct_input):
    product = reconstruct_input.product
    with pytest.raises(DataError, match="probe pixels"):
        scan_from_input(_with(reconstruct_input, probes=ProbeSequence(
            array=product.probes.get_array(), opr_weights=None,
            pixel_geometry=PixelGeometry(2 * PIXEL_M, PIXEL_M))))
    with pytest.raises(DataError, match="64 x 64 probe"):
        scan_from_input(_with(reconstruct_input, probes=ProbeSequence(
            array=product.probes.get_array()[..., :32, :32], opr_weights=None,
            pixel_geometry=product.probes.get_pixel_geometry())))
    with pytest.raises(DataError, match="no object"):
        scan_from_input(_with(reconstruct_input, object_=Object(None, None, None)))
    with pytest.raises(DataError, match="29 diffraction patterns but 30 scan points"):
        scan_from_input(ReconstructInput(reconstruct_input.diffraction_patterns[:29],
                                         reconstruct_input.bad_pixels, product))
    with pytest.raises(DataError, match="ReconstructInput"):
        scan_from_input(product)


def test_reconstruction_lands_in_the_input_object_frame(reconstruct_input):
    product = reconstruct_input.product  # object 96 x 96
    canvas = (torch.arange(20 * 30, dtype=torch.float32).reshape(20, 30) + 1j).to(
        torch.complex64)
    result = Reconstruction(object=canvas, coverage=torch.ones(20, 30), origin_px=(-5, 70),
                            crop_px=32, n_positions=30, n_groups=30)
    out = product_from_reconstruction(product, result)
    array = out.object_.get_array()
    assert array.shape == (1, 96, 96) and out.object_.layer_spacing_m == []
    np.testing.assert_array_equal(array[0, 0:15, 70:96], canvas.numpy()[5:20, 0:26])
    mask = np.ones((96, 96), dtype=bool)
    mask[0:15, 70:96] = False
    assert not array[0][mask].any()
    assert out.object_.get_center() == product.object_.get_center()
    assert out.object_.get_pixel_geometry() == product.object_.get_pixel_geometry()
    assert out.probe_positions is product.probe_positions and out.probes is product.probes


def test_product_from_scan_refusals(scan):
    from pinn.data import ScanData

    bare = ScanData(diffraction=scan.diffraction, positions=scan.positions, probe=scan.probe)
    with pytest.raises(DataError, match="no object"):
        product_from_scan(bare, pixel_size_m=PIXEL_M)
    with pytest.raises(DataError, match="pixel_size_m"):
        product_from_scan(scan, pixel_size_m=0.0)
    with pytest.raises(DataError, match="ScanData"):
        product_from_scan(scan.diffraction, pixel_size_m=PIXEL_M)


def _with(inp: ReconstructInput, **changes) -> ReconstructInput:
    product = inp.product
    fields = {"metadata": product.metadata, "probe_positions": product.probe_positions,
              "probes": product.probes, "object_": product.object_, "losses": product.losses}
    fields.update(changes)
    return ReconstructInput(inp.diffraction_patterns, inp.bad_pixels, Product(**fields))


