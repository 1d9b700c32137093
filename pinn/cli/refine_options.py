"""The options of ``pinn refine``: argparse only, kept apart from pinn/cli/parser.py, which
builds the whole command (one subcommand's options per function keeps that module one
concept)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def add_refine_command(sub, handler: Callable[[argparse.Namespace], int],
                       add_read_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``pinn refine`` to the subparsers ``sub``; ``handler`` runs it."""
    p = sub.add_parser("refine", help="refine object, probe modes and positions on the data",
                       description="Fit the object, a mixed-state probe (incoherent modes) and "
                       "optionally every position directly to the measured counts (Poisson "
                       "likelihood), starting from a flat object, a reconstruction or a trained "
                       "model's. Writes DIR/reconstruction.npz (pinn reconstruct's keys plus "
                       "probe, probe_power_fraction, positions, positions_initial), PNGs of "
                       "phase, amplitude, probe modes and position corrections, and "
                       "DIR/report.md with the deviance curve.")
    p.add_argument("data", type=Path, metavar="DATA.npz", help="the scan to refine on")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--init", type=Path, default=None, metavar="RECON.npz",
                       help="start from this reconstruction.npz (pinn reconstruct or refine) "
                            "instead of a flat object")
    start.add_argument("--model", type=Path, default=None, metavar="MODEL",
                       help="start from a trained model's reconstruction of the scan (archive "
                            "or run directory)")
    p.add_argument("--probe-modes", type=int, default=None, metavar="K",
                   help="number of incoherent probe modes; modes beyond the guess's are added "
                        "as Hermite-like modes of it (default: as many as the guess has)")
    p.add_argument("--mode-power", type=float, default=0.02, metavar="F",
                   help="share of the total power given to each added mode (default: 0.02)")
    p.add_argument("--no-refine-probe", action="store_true", help="keep the probe fixed")
    p.add_argument("--probe-support", type=float, default=None, metavar="R",
                   help="constrain the probe to a centred disk of radius R pixels")
    p.add_argument("--fix-probe-power", action="store_true",
                   help="keep the probe's total power at its power-matched start")
    p.add_argument("--orthogonalize-every-epoch", action="store_true",
                   help="orthogonalise and sort the probe modes every epoch (default: at the "
                        "start and the end only)")
    p.add_argument("--refine-positions", action="store_true",
                   help="also correct every scan position (after a warm-up)")
    p.add_argument("--position-constraint", choices=("affine", "shift"), default="affine",
                   help="what the position corrections may not contain, as the data hardly "
                        "determine it: a global shift, scale, rotation and shear (affine, the "
                        "default: the stage's calibration is trusted) or only a global shift "
                        "(shift: when the scan's scale or rotation is itself in doubt)")
    p.add_argument("--epochs", type=int, default=None, metavar="E",
                   help="passes over the scan (default: 10, or 20 with --refine-positions; a "
                        "rough probe guess needs more, e.g. 30)")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="scan points per step (default: 32)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="data order (default: 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted refinement in DIR (same settings)")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    add_read_options(p)
    p.set_defaults(func=handler)
