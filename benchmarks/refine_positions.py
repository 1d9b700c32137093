"""Position refinement on a simulated scan with known position errors (issue 12's target).

The scan: a ``lines`` object (features of 1-3 px on smooth ones), 64 x 64 patterns at ~480
positions of a Fermat spiral (not periodic, so a raster's grid ambiguity does not confound),
a 3-mode probe (Hermite-Gauss modes, power 0.80 / 0.15 / 0.05) with 1e6 photons per pattern
on average, Poisson counts. The counts are simulated at the true positions by the refiner's
own forward model (:func:`pinn.ops.ptycho_intensity`); the recorded positions are the true
ones plus Gaussian errors of 1.5 px per axis (2.1 px RMS).

``refine_scan`` then runs with ``probe_modes=3`` and the default settings, with and without
``refine_positions``. Reported: the refined positions' error against the truth after removing
the common shift (RMS, median, 95th percentile, max of the per-position distance), the mode
power fractions, the object's phase and amplitude SSIM against the true object
(:func:`pinn.metrics.evaluate_reconstruction` over the box spanned by the scan less 12 px),
the wall time and the CPU. One JSON record per case goes to results/refine_positions.jsonl.

    python benchmarks/refine_positions.py                  # with and without positions
    python benchmarks/refine_positions.py --cases positions --set position_method=newton
    python benchmarks/refine_positions.py --exact-probe    # diagnostic: the true 3 modes, fixed
    python benchmarks/refine_positions.py --start truth --set learning_rate=0.005
                                                  # diagnostic: start from the true object
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from _common import Recorder, parse_dataclass_settings
from pinn.data import ScanData
from pinn.data.objects import make_object
from pinn.data.probes import hermite_gauss_modes
from pinn.data.trajectories import spiral_positions
from pinn.metrics import evaluate_reconstruction
from pinn.ops.modes import orthogonalize_modes
from pinn.ops.ptycho_intensity import ptycho_intensity
from pinn.refine import RefineConfig, refine_scan

BOX_INSET_PX = 12


def simulate(n: int = 64, n_scans: int = 480, object_px: int = 192, photons: float = 1e6,
             powers: tuple[float, ...] = (0.80, 0.15, 0.05), error_px: float = 1.5,
             seed: int = 0) -> tuple[ScanData, torch.Tensor, torch.Tensor]:
    """The scan with recorded (erroneous) positions, the true positions ``(M, 2)`` float64
    and the true object ``(object_px, object_px)`` complex64."""
    obj = make_object("lines", object_px, seed=seed)
    truth = spiral_positions((object_px, object_px), n, n_scans)
    modes = hermite_gauss_modes(n, powers, sigma_px=n / 8)
    rounded = truth.round()
    steps = torch.arange(n) - n // 2
    rows = rounded[:, 0, None].long() + steps  # (M, N)
    cols = rounded[:, 1, None].long() + steps
    windows = obj[rows[:, :, None], cols[:, None, :]]  # (M, N, N)
    expected = ptycho_intensity(windows, modes, (truth - rounded).float())
    expected = expected * (photons / float(expected.sum(dim=(-2, -1)).mean()))
    g = torch.Generator().manual_seed(seed + 1)
    counts = torch.poisson(expected, generator=g)
    recorded = truth + error_px * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    probe = orthogonalize_modes(modes)[0]  # the dominant mode as the single-mode guess
    scan = ScanData(diffraction=counts.sqrt(), positions=recorded, probe=probe, object=obj,
                    counts=True)
    return scan, truth, obj


def position_errors(positions: torch.Tensor, truth: torch.Tensor) -> dict:
    """Per-position distance to the truth after removing the common shift: RMS, median,
    95th percentile and max (pixels)."""
    diff = positions.double() - truth
    diff = diff - diff.mean(dim=0)
    dist = diff.norm(dim=1)
    return {"rms_px": float(dist.square().mean().sqrt()), "median_px": float(dist.median()),
            "p95_px": float(torch.quantile(dist, 0.95)), "max_px": float(dist.max())}


def object_quality(result, obj: torch.Tensor, truth: torch.Tensor) -> dict:
    """Amplitude and phase SSIM of the refined object against the true one over the box
    spanned by the true positions less BOX_INSET_PX (registered, phase plane removed)."""
    recon = np.ones(tuple(obj.shape), dtype=np.complex64)
    oy, ox = result.origin_px
    canvas = result.object.numpy()
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + canvas.shape[0], obj.shape[0]), min(ox + canvas.shape[1], obj.shape[1])
    recon[y0:y1, x0:x1] = canvas[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    low = np.ceil(truth.numpy().min(axis=0)).astype(int) + BOX_INSET_PX
    high = np.floor(truth.numpy().max(axis=0)).astype(int) - BOX_INSET_PX
    mask = np.zeros(tuple(obj.shape), dtype=bool)
    mask[low[0]:high[0], low[1]:high[1]] = True
    metrics = evaluate_reconstruction(recon, obj.numpy(), mask)
    return {"phase_ssim": metrics["phase_ssim"], "amplitude_ssim": metrics["amplitude_ssim"],
            "phase_frc50": metrics["phase_frc50"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["positions", "fixed"],
                        choices=["positions", "fixed"])
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="RefineConfig overrides (default: RefineConfig's defaults)")
    parser.add_argument("--label", default="defaults", help="name of the method measured")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's seed")
    parser.add_argument("--exact-probe", action="store_true",
                        help="give the true 3 modes as the probe and do not refine it")
    parser.add_argument("--start", choices=["flat", "truth"], default="flat",
                        help="the object's start (truth: the simulated object itself)")
    parser.add_argument("--error-px", type=float, default=1.5,
                        help="the recorded positions' Gaussian error per axis (0: the truth)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rec = Recorder("refine_positions", torch.device("cpu"), args.json)
    scan, truth, obj = simulate(seed=args.seed, error_px=args.error_px)
    initial = position_errors(scan.positions, truth)
    settings = parse_dataclass_settings(RefineConfig, args.set)
    if args.exact_probe:
        scan = dataclasses.replace(scan, probe=hermite_gauss_modes(64, (0.80, 0.15, 0.05)))
        settings["refine_probe"] = False
    # both cases run as many epochs (the default with positions) so that their objects compare
    epochs = RefineConfig(probe_modes=3, refine_positions=True, **settings).epochs
    for case in args.cases:
        config = RefineConfig(probe_modes=3, refine_positions=case == "positions",
                              **{"epochs": epochs, **settings})
        start = time.perf_counter()
        result = refine_scan(scan, config, verbose=False,
                             init_object=obj if args.start == "truth" else None)
        seconds = time.perf_counter() - start
        figures = {"initial_" + k: v for k, v in initial.items()}
        figures.update(position_errors(result.positions, truth))
        figures.update(object_quality(result, obj, truth))
        figures.update({
            "power_fraction": [round(float(p), 4) for p in result.power_fraction],
            "final_deviance": result.history[-1]["train_deviance"],
            "seconds": seconds, "seconds_per_epoch": seconds / config.epochs,
            "load_average_1min": float(open("/proc/loadavg").read().split()[0]),
        })
        rec.record(f"simulated spiral 480x64 err={args.error_px:g}px {args.label} {case}",
                   {"label": args.label, "patterns": scan.n_scans,
                    "error_px": args.error_px,
                    "start": args.start, "exact_probe": args.exact_probe,
                    **dataclasses.asdict(config), "simulation_seed": args.seed}, figures)


if __name__ == "__main__":
    main()
