"""Refinement after a Ptychodus reconstruction: the network's object refined on the counts.

When the ``PinnRefinement`` settings ask for it (``epochs`` > 0), the stitched network object
starts :func:`pinn.refine.refine_from_network`, which fits the object, the probe modes and
(optionally) every position to the measured counts. The start probe is the model's for a
model trained with ``probe_trainable`` (its own trained probe), otherwise every incoherent mode
of the input product's probe (OPR component 0). The product that comes back carries

- the refined object, placed into the input object's frame as the network's would be
  (:func:`product_from_reconstruction`);
- all refined probe modes, ``(1, K, N, N)`` with the input probe's pixel geometry, in the
  data's units: the far field is energy-preserving, so for a unit-amplitude object the summed
  mode intensities equal the mean counts per pattern;
- with ``refine_positions``, the refined scan points in metres (the input's indexes and photon
  counts kept), converted back by the inverse of the input's conversion
  (:func:`pinn.interop.ptychodus.geometry.positions_from_pinn`); otherwise the input's points.
"""

from __future__ import annotations

import numpy as np
import torch
from ptychodus.api.probe import ProbeSequence
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence
from ptychodus.api.product import Product

from pinn.archive import Archive
from pinn.data import ScanData
from pinn.interop.ptychodus.convert import object_frame, product_from_reconstruction
from pinn.interop.ptychodus.geometry import positions_from_pinn
from pinn.reconstruct import Reconstruction
from pinn.refine import RefineConfig, RefineResult, refine_from_network
from pinn.refine.network import as_reconstruction, model_probe

__all__ = ["product_from_refinement", "refine_product"]


def start_probe(archive: Archive, product: Product) -> torch.Tensor:
    """``(K, N, N)`` complex64 start probe: the model's trained probe (all its modes) when the
    model trained it, else every mode of the product's OPR component 0."""
    if archive.config.model.probe_trainable:
        probe = model_probe(archive.model)
        return probe[None] if probe.dim() == 2 else probe
    return torch.from_numpy(np.ascontiguousarray(product.probes.get_array()[0])).to(
        torch.complex64)


def refine_product(archive: Archive, scan: ScanData, network: Reconstruction, product: Product,
                   config: RefineConfig, device: str = "cpu") -> Product:
    """Refine ``scan`` from the network's ``network`` reconstruction and return ``product``
    with the refined object, probe modes and (if refined) positions
    (:func:`product_from_refinement`).

    Raises:
        ConfigError, DataError: from :func:`pinn.refine.refine_scan` (e.g. too little overlap
            for position refinement).
    """
    refined = refine_from_network(network, scan, config,
                                  probe=start_probe(archive, product), device=device)
    return product_from_refinement(product, refined, positions=config.refine_positions)


def product_from_refinement(product: Product, refined: RefineResult, *,
                            positions: bool = True) -> Product:
    """``product`` with the refined object (in its object frame), all refined probe modes and,
    with ``positions``, the refined scan points (see the module docstring).

    Raises:
        DataError: the product's object has no geometry.
    """
    placed = product_from_reconstruction(product, as_reconstruction(refined))
    modes = refined.probe.detach().cpu().to(torch.complex64).numpy()  # (K, N, N)
    probes = ProbeSequence(array=modes[np.newaxis], opr_weights=None,  # (1, K, N, N)
                           pixel_geometry=product.probes.get_pixel_geometry())
    points = product.probe_positions
    if positions:
        frame = object_frame(product.object_)
        x_m, y_m = positions_from_pinn(refined.positions.numpy(), frame, modes.shape[-1])
        points = ProbePositionSequence([
            ProbePosition(index=p.index, x_m=float(x), y_m=float(y),
                          probe_photon_count=p.probe_photon_count)
            for p, x, y in zip(product.probe_positions, x_m, y_m, strict=True)])
    return Product(metadata=product.metadata, probe_positions=points, probes=probes,
                   object_=placed.object_, losses=list(product.losses))
