"""``pinn refine``'s work between the argument parser (pinn/cli/) and :func:`refine_scan`."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from pinn.errors import ConfigError, DataError
from pinn.refine.network import network_refine_config
from pinn.refine.outputs import save_refinement
from pinn.refine.run import RefineConfig, RefineResult, refine_scan


def config_from_args(args: argparse.Namespace) -> RefineConfig:
    """The :class:`RefineConfig` the command line asks for (defaults where it is silent)."""
    if args.probe_modes is not None and args.probe_modes < 1:
        raise ConfigError(f"--probe-modes is {args.probe_modes}; use 1 or more modes")
    given = {"epochs": args.epochs, "batch_size": args.batch_size}
    # a network's object is a good start, refined at a lower rate than a flat one
    base = network_refine_config if getattr(args, "model", None) is not None else RefineConfig
    config = base(probe_modes=args.probe_modes, mode_power=args.mode_power,
                  refine_probe=not args.no_refine_probe,
                  refine_positions=args.refine_positions, seed=args.seed,
                  position_constraint=args.position_constraint,
                  probe_support_radius=args.probe_support,
                  fix_probe_power=args.fix_probe_power,
                  orthogonalize_every_epoch=args.orthogonalize_every_epoch)
    return replace(config, **{k: v for k, v in given.items() if v is not None})


def read_start(path: Path) -> tuple[torch.Tensor, tuple[int, int]]:
    """The object and its origin from a ``reconstruction.npz`` (pinn reconstruct or refine);
    the file is checked as ``pinn evaluate`` checks it."""
    from pinn.evaluate import load_reconstruction

    start = load_reconstruction(path)
    if not bool(torch.isfinite(torch.view_as_real(start.object)).all()):
        raise DataError(f"{path}: the object holds NaN or infinite values; it cannot start a "
                        "refinement")
    return start.object, start.origin_px


def model_start(model_path: Path, scan, device: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """A trained model's stitched reconstruction of ``scan`` as the refinement's start, at unit
    mean amplitude as ``pinn reconstruct --refine`` starts (:func:`unit_amplitude`)."""
    from pinn.archive import load_archive
    from pinn.reconstruct import reconstruct
    from pinn.refine.network import unit_amplitude

    archive = load_archive(model_path, device=device)
    # without the model's passes over the scan: the refinement replaces them (docs/DESIGN.md
    # §11.4)
    result = reconstruct(archive, scan, device=device, progress=False, projection_passes=0)
    return unit_amplitude(result), result.origin_px


def refine_command(args: argparse.Namespace, scan) -> tuple[dict[str, Path], RefineResult]:
    """Run ``pinn refine`` on an already read scan; returns the written paths and the result."""
    config = config_from_args(args)
    out = Path(args.out)
    if (out / "reconstruction.npz").exists() and not args.resume:
        raise ConfigError(f"{out} already holds a refinement; choose another --out, or pass "
                          "--resume to continue an interrupted one")
    init, origin = None, (0, 0)
    if args.init is not None:
        init, origin = read_start(args.init)
    elif args.model is not None:
        init, origin = model_start(args.model, scan, args.device)
    start = time.perf_counter()
    result = refine_scan(scan, config, out, init_object=init, init_origin=origin,
                         resume=args.resume, device=args.device, verbose=not args.quiet)
    note = positions_note(config, result)
    if note:
        print(note, file=sys.stderr)
    return save_refinement(result, out, time.perf_counter() - start), result


def positions_note(config: RefineConfig, result: RefineResult) -> str | None:
    """One line for the user when positions were to be refined but never started: the
    deviance kept falling fast (``RefineConfig.position_plateau``) until the last epoch."""
    if not config.refine_positions or result.positions_started is not None:
        return None
    return (f"note: the positions were not refined: the deviance was still falling by more "
            f"than {100 * (config.position_plateau or 0):.0f} % per epoch when the run ended "
            f"(positions start once it settles); give more --epochs")
