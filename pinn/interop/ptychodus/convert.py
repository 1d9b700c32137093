"""Ptychodus data <-> pinn data: inputs to scans, reconstructions and scans to products.

Ptychodus 1.7 hands a reconstructor a ``ReconstructInput``: raw counts ``(M, H, W)``, an
``(H, W)`` bad-pixel mask and a ``Product`` whose probe is ``(C_opr, I, N, N)`` complex, whose
object is ``(L, H_obj, W_obj)`` complex with a pixel size and a centre in metres, and whose
scan points are in metres. pinn works on a :class:`pinn.data.ScanData`. Conversions:

- counts -> amplitude with the bad pixels filled (:func:`pinn.interop.ptychodus.counts`);
- scan points -> ``(y, x)`` pinn positions with the centring rule of
  :mod:`pinn.interop.ptychodus.geometry`;
- probe: every incoherent mode of the first OPR component, ``(N, N)`` for one mode, else
  ``(K, N, N)`` (a model with ``probe_modes`` K uses them, a refinement starts from them);
- object: layer 0 (pinn reconstructs a single thin object).

The way back puts a stitched :class:`pinn.reconstruct.Reconstruction` into the input object's
own frame (with a trained probe, all its modes, brought back to the input probe's units by
:func:`probe_to_product_units`), and turns a ScanData (with its object) into a Product and
assembled counts that Ptychodus saves as ``product.h5`` and ``diffraction.h5``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from ptychodus.api.assemble import AssembledDiffractionData
from ptychodus.api.constants import energy_eV_to_wavelength_m
from ptychodus.api.geometry import PixelGeometry
from ptychodus.api.io import (
    StandardFileLayout,
    load_diffraction_data,
    load_product,
    save_diffraction_data,
    save_product,
)
from ptychodus.api.object import Object, ObjectCenter
from ptychodus.api.probe import ProbeSequence
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
from ptychodus.api.product import Product, ProductMetadata
from ptychodus.api.reconstruct import ReconstructInput, prepare_reconstruct_input

from pinn.config import ModelConfig
from pinn.data import ScanData
from pinn.errors import DataError
from pinn.interop.ptychodus.counts import counts_to_amplitude
from pinn.interop.ptychodus.geometry import ObjectFrame, positions_from_pinn, positions_to_pinn
from pinn.model import ptychopinn
from pinn.reconstruct import Reconstruction

__all__ = ["object_frame", "probe_to_product_units", "product_from_reconstruction",
           "product_from_scan", "read_input_folder", "scan_from_input", "write_input_folder"]

logger = logging.getLogger(__name__)


def object_frame(obj: Object) -> ObjectFrame:
    """The sample-plane geometry of a Ptychodus object.

    Raises:
        DataError: the object is empty or lacks its pixel size or centre.
    """
    if obj.width_px == 0 or obj.height_px == 0:
        raise DataError("the product has no object; create or load one in Ptychodus first "
                        "(its geometry places the scan on the object)")
    try:
        geometry = obj.get_geometry()
    except ValueError as exc:
        raise DataError(f"the product's object has no geometry ({exc}); set its pixel size "
                        "and centre in Ptychodus") from None
    return ObjectFrame(height_px=geometry.height_px, width_px=geometry.width_px,
                       pixel_height_m=geometry.pixel_height_m,
                       pixel_width_m=geometry.pixel_width_m,
                       center_y_m=geometry.center_y_m, center_x_m=geometry.center_x_m)


def scan_from_input(inp: ReconstructInput, *, fill: str = "neighbors") -> ScanData:
    """A Ptychodus ``ReconstructInput`` as a pinn scan.

    Args:
        inp: counts ``(M, N, N)`` (zero frequency at the centre), bad pixels ``(N, N)`` bool
            or None, and the product (probe ``(C_opr, I, N, N)``, object with geometry, M scan
            points in metres).
        fill: how bad pixels get a value, ``"neighbors"`` or ``"zero"``
            (:func:`pinn.interop.ptychodus.counts.counts_to_amplitude`).

    Returns:
        ScanData: float32 amplitude ``sqrt(counts)`` with ``counts=True``, float64 ``(y, x)``
        positions, the complex64 probe of OPR component 0 (``(N, N)``, or ``(K, N, N)`` when
        it has K > 1 incoherent modes), the complex64 object layer 0.

    Raises:
        DataError: patterns not square or not matching the probe, a number of scan points
            other than M, object and probe pixel sizes that differ, a missing object geometry,
            or any check of :class:`pinn.data.ScanData`.
        ConfigError: an unknown ``fill``.
    """
    if not isinstance(inp, ReconstructInput):
        raise DataError(f"expected a Ptychodus ReconstructInput, got {type(inp).__name__}")
    amplitude = counts_to_amplitude(inp.diffraction_patterns, inp.bad_pixels, fill=fill)
    m, n = amplitude.shape[0], amplitude.shape[-1]
    product = inp.product
    probes = product.probes.get_array()  # (C_opr, I, N, N)
    if probes.ndim != 4 or probes.shape[-2:] != (n, n) or probes.shape[1] == 0:
        raise DataError(f"the probe has shape {probes.shape}; pinn needs an {n} x {n} probe, "
                        "the size of the diffraction patterns")
    if probes.shape[0] > 1:
        logger.warning("pinn uses one probe for every scan point: it keeps OPR component 0 of "
                       "the input probe (%d components, %d incoherent modes each) and ignores "
                       "the other components", probes.shape[0], probes.shape[1])
    modes = probes[0] if probes.shape[1] > 1 else probes[0, 0]  # (K, N, N) or (N, N)
    frame = object_frame(product.object_)
    probe_pixel = product.probes.get_pixel_geometry()
    if not (math.isclose(probe_pixel.width_m, frame.pixel_width_m, rel_tol=1e-6)
            and math.isclose(probe_pixel.height_m, frame.pixel_height_m, rel_tol=1e-6)):
        raise DataError(f"object pixels are {frame.pixel_width_m:.6g} x "
                        f"{frame.pixel_height_m:.6g} m but probe pixels "
                        f"{probe_pixel.width_m:.6g} x {probe_pixel.height_m:.6g} m; pinn needs "
                        "them equal (rebuild the object on the probe's grid in Ptychodus)")
    points = product.probe_positions
    if len(points) != m:
        raise DataError(f"{m} diffraction patterns but {len(points)} scan points; they must "
                        "pair one to one")
    positions = positions_to_pinn(points.get_coordinates_x_m(), points.get_coordinates_y_m(),
                                  frame, n)
    return ScanData(diffraction=amplitude, positions=torch.from_numpy(positions),
                    probe=torch.from_numpy(np.ascontiguousarray(modes)),
                    object=torch.from_numpy(np.ascontiguousarray(product.object_.get_layer(0))),
                    counts=True)


def product_from_reconstruction(product: Product, reconstruction: Reconstruction,
                                probe: np.ndarray | None = None) -> Product:
    """The input product with its object replaced by a pinn reconstruction.

    The stitched object is placed into the input object's array (same shape, pixel size and
    centre): object pixel ``(i, j)`` takes canvas pixel ``(i - origin_y, j - origin_x)``. Pixels
    the canvas does not reach are 0. The result has one layer; scan points, metadata and
    losses are those of ``product``, and so is the probe unless ``probe`` is given.

    Args:
        probe: an ``(N, N)`` complex probe or ``(K, N, N)`` modes to carry instead of the
            input's (e.g. a trained probe from :func:`probe_to_product_units`); it becomes a
            ``(1, K, N, N)`` probe with the input probe's pixel geometry.

    Raises:
        DataError: the input object has no geometry, or ``probe`` is not the input probe's
            ``N x N``.
    """
    frame = object_frame(product.object_)
    out = np.zeros((frame.height_px, frame.width_px), dtype=np.complex64)
    canvas = reconstruction.object.numpy()  # (h, w)
    oy, ox = reconstruction.origin_px
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + canvas.shape[0], frame.height_px), min(ox + canvas.shape[1], frame.width_px)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = canvas[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    probes = product.probes
    if probe is not None:
        n = probes.get_array().shape[-1]
        if probe.ndim not in (2, 3) or probe.shape[-2:] != (n, n) or probe.size == 0:
            raise DataError(f"the probe to return has shape {probe.shape}; the product's probe "
                            f"is {n} x {n}")
        array = np.asarray(probe, dtype=np.complex64).reshape(1, -1, n, n)  # (1, K, N, N)
        probes = ProbeSequence(array=array, opr_weights=None,
                               pixel_geometry=probes.get_pixel_geometry())
    obj = product.object_
    return Product(metadata=product.metadata, probe_positions=product.probe_positions,
                   probes=probes,
                   object_=Object(array=out[np.newaxis], pixel_geometry=obj.get_pixel_geometry(),
                                  center=obj.get_center(), layer_spacing_m=[]),
                   losses=list(product.losses))


def probe_to_product_units(model_probe: torch.Tensor, product: Product,
                           model_config: ModelConfig) -> np.ndarray:
    """A model's probe (all its modes) in the units of a product's probe.

    A pinn model holds its probe normalised: :func:`pinn.model.ptychopinn.initial_probe`
    turns a guess into the model's ``probe_modes`` modes and divides them by one positive
    number (:func:`pinn.ops.normalize_probe`, or :func:`pinn.ops.normalize_probe_modes` for
    modes, with ``probe_scale``). This multiplies ``model_probe`` by the number that normalisation
    divides the product's probe (every mode of OPR component 0) by, so a model probe that
    did not train comes back as the product's probe (to float32 rounding; modes the model
    added come back in the same units) and a trained one keeps its change relative to it.

    Args:
        model_probe: ``(N, N)`` complex or ``(K, N, N)`` modes, e.g. ``model.probe``.
        product: the product whose probe ``(C_opr, I, N, N)`` sets the units.
        model_config: the model's configuration (``probe_scale``, ``probe_modes``,
            ``probe_mode_power``).

    Returns:
        ``(N, N)`` or ``(K, N, N)`` complex64 numpy array, as ``model_probe``.
    """
    reference = torch.from_numpy(np.ascontiguousarray(product.probes.get_array()[0]))
    start = ptychopinn.select_probe_modes(reference, model_config)
    normalised = ptychopinn.initial_probe(reference, model_config)
    factor = (torch.linalg.vector_norm(start.to(torch.complex128))
              / torch.linalg.vector_norm(normalised.to(torch.complex128)))
    probe = model_probe.detach().cpu().to(torch.complex128) * factor  # (N, N) or (K, N, N)
    return probe.to(torch.complex64).numpy()


def product_from_scan(
    scan: ScanData,
    *,
    pixel_size_m: float,
    detector_distance_m: float = 2.0,
    photon_energy_eV: float = 10_000.0,  # noqa: N803 - Ptychodus' spelling
    center_m: tuple[float, float] = (0.0, 0.0),
    name: str = "pinn",
) -> tuple[Product, AssembledDiffractionData]:
    """A pinn scan as a Ptychodus product and assembled counts (the inverse of
    :func:`scan_from_input` up to bad pixels).

    Args:
        scan: the scan; it needs its ``object`` (which fixes the object frame).
        pixel_size_m: the square object and probe pixel in metres.
        detector_distance_m, photon_energy_eV: the far-field geometry; the detector pixel is
            set to ``wavelength * distance / (N * pixel_size_m)`` so Ptychodus derives the same
            object pixel from it.
        center_m: ``(y, x)`` metres of the object array's centre.
        name: the product's name.

    Returns:
        ``(product, diffraction)``: the product (one-layer object, probe ``(1, K, N, N)``
        with all K modes of the scan's probe,
        scan points with indexes ``0..M-1``) and counts ``diffraction**2`` ``(M, N, N)``
        (int32 when ``scan.counts``, else float32) with an empty bad-pixel mask.

    Raises:
        DataError: the scan has no object, or a size or distance is not positive.
    """
    if not isinstance(scan, ScanData):
        raise DataError(f"expected a pinn ScanData, got {type(scan).__name__}")
    if scan.object is None:
        raise DataError("the scan has no object; give it one (the initial guess) so that the "
                        "product has an object frame")
    for label, value in (("pixel_size_m", pixel_size_m), ("detector_distance_m",
                         detector_distance_m), ("photon_energy_eV", photon_energy_eV)):
        if not (math.isfinite(value) and value > 0):
            raise DataError(f"{label} is {value!r}; expected a positive number")
    n = scan.N
    h, w = scan.object.shape
    frame = ObjectFrame(height_px=h, width_px=w, pixel_height_m=pixel_size_m,
                        pixel_width_m=pixel_size_m, center_y_m=center_m[0],
                        center_x_m=center_m[1])
    x_m, y_m = positions_from_pinn(scan.positions.numpy(), frame, n)
    pixel = PixelGeometry(width_m=pixel_size_m, height_m=pixel_size_m)
    counts = scan.diffraction.to(torch.float64).square().numpy()  # (M, N, N)
    counts = np.rint(counts).astype(np.int32) if scan.counts else counts.astype(np.float32)
    metadata = ProductMetadata(
        name=name, comments="written by pinn", detector_distance_m=detector_distance_m,
        photon_energy_eV=photon_energy_eV,
        probe_photon_count=float(scan.measured_nphotons or 0.0), exposure_time_s=0.0,
        mass_attenuation_m2_per_kg=0.0, tomography_angle_deg=0.0)
    product = Product(
        metadata=metadata,
        probe_positions=ProbePositionSequence(
            [ProbePosition(index=i, x_m=float(x), y_m=float(y))
             for i, (x, y) in enumerate(zip(x_m, y_m, strict=True))]),
        probes=ProbeSequence(array=scan.probe_modes.numpy()[np.newaxis],  # (1, K, N, N)
                             opr_weights=None, pixel_geometry=pixel),
        object_=Object(array=scan.object.numpy()[np.newaxis], pixel_geometry=pixel,
                       center=ObjectCenter(x_m=center_m[1], y_m=center_m[0]),
                       layer_spacing_m=[]),
        losses=[])
    detector_pixel_m = (energy_eV_to_wavelength_m(photon_energy_eV) * detector_distance_m
                        / (n * pixel_size_m))
    diffraction = AssembledDiffractionData(
        np.arange(scan.n_scans), counts,
        PixelGeometry(width_m=detector_pixel_m, height_m=detector_pixel_m),
        np.zeros((n, n), dtype=bool))
    return product, diffraction


def write_input_folder(folder: str | os.PathLike, product: Product,
                       diffraction: AssembledDiffractionData) -> dict[str, Path]:
    """Write ``diffraction.h5`` and ``product.h5`` (Ptychodus' own formats, through its own
    writers) into ``folder`` (created if missing): the layout that ``ptychodus --batch`` and
    :meth:`PinnReconstructor.train` read. Returns the two paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"diffraction": folder / StandardFileLayout.DIFFRACTION,
             "product": folder / StandardFileLayout.PRODUCT}
    save_diffraction_data(paths["diffraction"], diffraction)
    save_product(paths["product"], product)
    return paths


def read_input_folder(folder: str | os.PathLike) -> ReconstructInput:
    """Read ``diffraction.h5`` + ``product.h5`` from ``folder`` and pair patterns with scan
    points by their indexes, as Ptychodus does before a reconstruction.

    Raises:
        DataError: a file is missing or unreadable, or no pattern matches a scan point.
    """
    folder = Path(folder)
    paths = [folder / StandardFileLayout.DIFFRACTION, folder / StandardFileLayout.PRODUCT]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{folder} lacks {missing}; a Ptychodus data folder holds "
                        f"{StandardFileLayout.DIFFRACTION} and {StandardFileLayout.PRODUCT}")
    try:
        diffraction = load_diffraction_data(paths[0])
        product = load_product(paths[1])
        return prepare_reconstruct_input(diffraction, product)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read the Ptychodus data in {folder}: {exc}") from None
