"""A trained network's reconstruction as the start of a refinement ("network, then refine").

The network reconstructs the whole scan in one pass (:func:`pinn.reconstruct.reconstruct`);
its stitched object and the probe the model illuminates with start :func:`refine_scan`, which
then fits object, probe modes and (optionally) positions to the counts. The network's object
is brought to unit mean amplitude over the well-covered region first, because the
refinement's learning rates are in units of a unit-amplitude object (the probe is
power-matched to the data afterwards, so the scale is otherwise free), and the object's
learning rate is lower than from a flat start (:data:`NETWORK_LEARNING_RATE`): Adam's first
steps move every pixel by about the learning rate whatever its gradient, which a flat start
needs and a good start does not survive. See docs/DESIGN.md, "Refinement".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pinn.archive import Archive
from pinn.reconstruct import Reconstruction, reconstruct
from pinn.refine.run import RefineConfig, RefineResult, refine_scan


#: The object's learning rate when a network's object starts the refinement (a flat start uses
#: :class:`RefineConfig`'s 0.05). The demo's simulated scan, 10 epochs from its network
#: (phase SSIM 0.897): 0.942 at 0.05, 0.979 at 0.02, 0.986 at 0.01, 0.991 at 0.005, against
#: 0.966 from flat at 0.05; see benchmarks/README.md for the measured Siemens star.
NETWORK_LEARNING_RATE = 0.01


def network_refine_config(**settings) -> RefineConfig:
    """The :class:`RefineConfig` for a start from a network's object: the defaults with the
    object's learning rate :data:`NETWORK_LEARNING_RATE`; ``settings`` override any field."""
    return RefineConfig(**{"learning_rate": NETWORK_LEARNING_RATE, **settings})


@dataclass(frozen=True)
class NetworkRefinement:
    """The network's reconstruction, the refinement that started from it, and their times.

    network: the network's stitched :class:`~pinn.reconstruct.Reconstruction` (as the
        network gave it, before the amplitude rescaling of the start).
    refined: the :class:`~pinn.refine.RefineResult`.
    network_s, refine_s: wall seconds of the network pass and of the refinement.
    """

    network: Reconstruction
    refined: RefineResult
    network_s: float
    refine_s: float

    @property
    def reconstruction(self) -> Reconstruction:
        """The refined object as a :class:`~pinn.reconstruct.Reconstruction`
        (:func:`as_reconstruction`), e.g. for :func:`pinn.evaluate.evaluate`."""
        return as_reconstruction(self.refined)


def model_probe(model) -> torch.Tensor:
    """``(N, N)`` complex64 probe (``(K, N, N)`` modes for a mixed-state model) a
    :class:`~pinn.model.PtychoPINN` illuminates with (its probe times its exit-wave mask, if
    it has one), detached, on the CPU. Its units are the model's (normalised); the refinement
    power-matches it to the data."""
    probe = model.probe.detach().cpu().to(torch.complex64)
    mask = getattr(model, "probe_mask", None)
    if mask is not None:
        probe = probe * mask.detach().cpu()
    return probe


def unit_amplitude(result: Reconstruction) -> torch.Tensor:
    """``(H, W)`` complex64: the stitched object divided by its mean amplitude over the
    well-covered pixels (:meth:`Reconstruction.covered`); unchanged if nothing is covered."""
    covered = result.covered()
    if not bool(covered.any()):
        return result.object
    mean = float(result.object.abs()[covered].mean())
    return result.object / mean if mean > 0 else result.object


def as_reconstruction(result: RefineResult) -> Reconstruction:
    """A refinement as a :class:`~pinn.reconstruct.Reconstruction` (its coverage is the summed
    probe intensity at the refined positions), so that :func:`pinn.evaluate.evaluate` and the
    other consumers of a stitched object take it."""
    n = int(result.probe.shape[-1])
    m = int(result.positions.shape[0])
    return Reconstruction(object=result.object, coverage=result.coverage,
                          origin_px=result.origin_px, crop_px=n, n_positions=m, n_groups=m)


def reconstruct_and_refine(model: Archive, scan, epochs: int | None = None, *,
                           config: RefineConfig | None = None,
                           out_dir: str | Path | None = None, use_model_probe: bool = True,
                           device: str = "cpu", verbose: bool = False,
                           **reconstruct_options) -> NetworkRefinement:
    """Reconstruct ``scan`` with the network, then refine from its stitched object.

    Args:
        model: a trained model: an :class:`~pinn.archive.Archive` (``load_archive(path)``) or
            a bare :class:`~pinn.model.PtychoPINN` (then pass the grouping as for
            :func:`~pinn.reconstruct.reconstruct`).
        scan: a :class:`pinn.data.ScanData` (counts or amplitudes of counts, as for
            :func:`refine_scan`).
        epochs: refinement epochs (overrides ``config.epochs``; default: the config's).
        config: the refinement settings (default: :func:`network_refine_config`; the number
            of probe modes defaults to the start probe's, one).
        out_dir: where the refinement's checkpoints and TensorBoard logs go (None: nowhere).
        use_model_probe: start from the probe the model illuminates with (a trained probe if
            the model trained one); False keeps the scan's probe.
        device: torch device of both steps.
        verbose: print the refinement's progress (and the network's progress bar).
        reconstruct_options: passed to :func:`~pinn.reconstruct.reconstruct` (``batch_size``,
            ``crop_px``, ``weighting``, ``neighbors``, ``seed``...). ``projection_passes``
            defaults to 0 here, not to the model's: the refinement is the pass over the whole
            scan, and from an object the passes have already fitted its first Adam steps lose
            fit (docs/DESIGN.md §11.4).

    Returns:
        :class:`NetworkRefinement`.

    Raises:
        ConfigError, DataError: as :func:`~pinn.reconstruct.reconstruct` and
            :func:`refine_scan` raise them.
    """
    config = config or network_refine_config()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if reconstruct_options.get("projection_passes") is None:
        reconstruct_options["projection_passes"] = 0
    start = time.perf_counter()
    network = reconstruct(model, scan, device=device, progress=verbose, **reconstruct_options)
    network_s = time.perf_counter() - start
    bare = model.model if isinstance(model, Archive) else model
    start = time.perf_counter()
    refined = refine_from_network(network, scan, config, out_dir,
                                  probe=model_probe(bare) if use_model_probe else None,
                                  device=device, verbose=verbose)
    return NetworkRefinement(network=network, refined=refined, network_s=network_s,
                             refine_s=time.perf_counter() - start)


def refine_from_network(network: Reconstruction, scan, config: RefineConfig | None = None,
                        out_dir: str | Path | None = None, *, probe: torch.Tensor | None = None,
                        device: str = "cpu", verbose: bool = False) -> RefineResult:
    """Refine ``scan`` from a network's stitched reconstruction of it (already made).

    Args:
        network: the stitched :class:`~pinn.reconstruct.Reconstruction` (rescaled here by
            :func:`unit_amplitude`).
        config: the refinement settings (default: :func:`network_refine_config`).
        scan, out_dir, device, verbose: as for :func:`refine_scan`.
        probe: ``(N, N)`` or ``(K, N, N)`` complex start probe (e.g. :func:`model_probe`);
            None keeps the scan's.
    """
    if probe is not None:
        scan = replace(scan, probe=probe)
    return refine_scan(scan, config or network_refine_config(), out_dir, init_object=unit_amplitude(network),
                       init_origin=network.origin_px, device=device, verbose=verbose)
