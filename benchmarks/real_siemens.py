"""pinn on measured data: the APS Velociprobe Siemens star, against an iterative solver.

Trains on the 516 measured patterns (counts, zero frequency at the corner, window-corner
positions; read by pinn's tike reader) with the reference solver's probe (its dominant mode,
or its ``--probe-modes`` strongest modes),
reconstructs every position, and compares the phase with pty-chi's LSQML reconstruction
(100 epochs, 4 probe modes, position correction) inside the well-covered centre, after
subpixel registration and phase-ramp alignment. The solver's object is brought onto pinn's
pixel grid first: its frame differs from pinn's by the constant offset between its recorded
corner positions and the file's (measured here), and with ``--crop 64`` it is resampled by the
same spectrum crop as the patterns.

    python benchmarks/real_siemens.py --crop 64 --epochs 40
    python benchmarks/real_siemens.py --crop 128 --epochs 20 --probe-modes 4

``--probe-modes K`` gives the model the solver's K strongest probe modes instead of its
dominant one (the data are partially coherent: one mode cannot fit their amplitude);
``--probe-file`` takes the probe from another NPZ instead of the solver's, e.g. the
``reconstruction.npz`` of ``pinn refine --probe-modes 4`` started from the data's own guess.
Besides the model's reconstruction, the record scores the network's object alone
(``network_*``), the model without its passes over the scan (``no_passes_*``) and an untrained
network of the same configuration with the model's inference (``untrained_*``: what the
physics alone gives).

Writes figures and metrics to --out (default benchmarks/results/real_siemens_<crop>/) and one
JSON record to results/real_siemens.jsonl. The data is read from ../shared/data (never
copied into the repository).
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, Recorder, device_from, peak_memory_bytes, reset_peak_memory
from pinn import ops
from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import load_scan
from pinn.data.crop import crop_scan
from pinn.evaluate import evaluate
from pinn.engine import seed_everything
from pinn.fit import train_scan
from pinn.model import build_model
from pinn.metrics import align_phase
from pinn.plotting import save_side_by_side
from pinn.reconstruct import reconstruct

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MEASURED = DATA / "siemens-star-small.npz.bz2"
SOLVER = DATA / "siemens-star-ptychi.npz"


def solver_object_in_pinn_frame(full_scan, solver: dict) -> torch.Tensor:
    """The solver's object sampled on pinn's full-resolution object grid.

    pinn's tike reader shifts the file's corner positions so that the smallest corner is 0;
    the solver's corners are the file's plus a constant. So solver pixel = pinn pixel + t with
    t = min(solver corners) (checked to be constant to 1e-4 px)."""
    raw = np.load(io.BytesIO(bz2.decompress(MEASURED.read_bytes())))["scan"][0]
    corners = solver["positions_topleft_px_initial"]
    shift = corners - raw
    if np.ptp(shift, axis=0).max() > 1e-3:
        raise SystemExit("the solver's positions are not a constant shift of the file's")
    t = torch.tensor(corners.min(axis=0), dtype=torch.float64)
    height = int(full_scan.positions[:, 0].max()) + full_scan.N
    width = int(full_scan.positions[:, 1].max()) + full_scan.N
    size = max(height, width) + (max(height, width) % 2)
    obj = torch.from_numpy(solver["object"]).to(torch.complex64)
    centre = (t + size // 2).to(torch.float32)[None, None]  # window centre in solver pixels
    window = ops.extract_patches(obj[None], centre, size)[0, 0]  # (size, size), pinn frame
    return window[:height, :width]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=64, help="central detector crop (64, 128)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--gridsize", type=int, default=1)
    parser.add_argument("--n-filters-scale", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--plateau-patience", type=int, default=6)
    parser.add_argument("--projection-steps", type=int, default=ModelConfig().projection_steps,
                        help="error-reduction steps per group at inference (default: pinn's)")
    parser.add_argument("--projection-passes", type=int,
                        default=ModelConfig().projection_passes,
                        help="passes over the whole scan after stitching (default: pinn's)")
    parser.add_argument("--probe-modes", type=int, default=1,
                        help="the probe file's K strongest modes (1: its dominant mode)")
    parser.add_argument("--probe-file", type=Path, default=SOLVER,
                        help="the NPZ the probe comes from (default: the solver's; e.g. a "
                             "`pinn refine` reconstruction.npz, whose modes were learned from "
                             "the data's own guess)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not MEASURED.exists():
        raise SystemExit(f"the measured data is not at {MEASURED}")
    device = device_from(args.device)
    out = args.out or RESULTS / f"real_siemens_{args.crop}"
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder("real_siemens", device, args.json)

    solver = dict(np.load(SOLVER))
    full = load_scan(MEASURED, probe_path=args.probe_file)
    if args.probe_modes == 1:
        full = dataclasses.replace(full, probe=full.dominant_probe)  # the file's dominant mode
    full = dataclasses.replace(full, object=solver_object_in_pinn_frame(full, solver))
    scan = crop_scan(full, args.crop) if args.crop != full.N else full

    config = Config(
        model=ModelConfig(size_px=scan.N, gridsize=args.gridsize,
                          n_filters_scale=args.n_filters_scale,
                          projection_steps=args.projection_steps,
                          projection_passes=args.projection_passes,
                          probe_modes=args.probe_modes),
        training=TrainingConfig(epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr, plateau_patience=args.plateau_patience,
                                early_stopping_patience=0, seed=args.seed))
    reset_peak_memory(device)
    start = time.perf_counter()
    fit = train_scan(scan, config, out / "run", overwrite=True, device=device,
                     data_path=MEASURED)
    train_s = time.perf_counter() - start
    tick = time.perf_counter()
    result = reconstruct(fit.model, scan, device=device, progress=False,
                         neighbors=config.data.neighbors, seed=config.data.grouping_seed)
    reconstruct_s = time.perf_counter() - tick

    # the well-covered centre: covered pixels within the central half of the scanned extent
    covered = result.covered(0.5)
    rows, cols = covered.nonzero(as_tuple=True)
    box = torch.zeros_like(covered)
    cy, cx = int(rows.float().mean()), int(cols.float().mean())
    hy, hx = int((rows.max() - rows.min()) / 4), int((cols.max() - cols.min()) / 4)
    box[cy - hy:cy + hy, cx - hx:cx + hx] = True
    truth = result.object_window(scan.object)
    region = covered & box
    metrics = evaluate(dataclasses.replace(result, coverage=result.coverage * region),
                       scan.object)
    network = {}
    # the network's object alone, and (with passes) the model's without its passes, scored
    # over the same region
    variants = {}
    if args.projection_steps or args.projection_passes:
        variants["network"] = {"projection_steps": 0, "projection_passes": 0}
    if args.projection_passes:
        variants["no_passes"] = {"projection_passes": 0}
    # the untrained network with the model's inference: what the physics alone gives
    seed_everything(args.seed)
    untrained = build_model(config.model, probe=scan.probe,
                            intensity_scale=float(fit.model.intensity_scale))
    variants["untrained"] = {}
    for name, options in variants.items():
        model = untrained if name == "untrained" else fit.model
        other = reconstruct(model, scan, device=device, progress=False,
                            neighbors=config.data.neighbors, seed=config.data.grouping_seed,
                            **options)
        other = evaluate(dataclasses.replace(other, coverage=other.coverage * region),
                         scan.object)
        network.update({f"{name}_phase_ssim": other["phase_ssim"],
                        f"{name}_amplitude_ssim": other["amplitude_ssim"],
                        f"{name}_phase_frc_half_bit": other["phase_frc_half_bit"]})
    phase = align_phase(result.object.numpy(), truth.numpy(), region.numpy())
    view = covered.numpy()
    save_side_by_side(out / "phase_pinn_vs_solver.png",
                      [np.angle(phase), truth.angle().numpy()],
                      ["pinn phase (rad)", "pty-chi lsqml phase (rad)"], [view, view],
                      cmap="twilight")
    save_side_by_side(out / "amplitude_pinn_vs_solver.png",
                      [result.amplitude.numpy(), truth.abs().numpy()],
                      ["pinn amplitude", "pty-chi lsqml amplitude"], [view, view], cmap="gray")
    figures = {
        "phase_ssim": metrics["phase_ssim"], "amplitude_ssim": metrics["amplitude_ssim"],
        "phase_frc_half_bit": metrics["phase_frc_half_bit"],
        "phase_frc50": metrics["phase_frc50"],
        "phase_resolution_px": (1 / metrics["phase_frc_half_bit"] if
                                metrics["phase_frc_half_bit"] > 0 else float("inf")),
        "train_s": train_s, "reconstruct_s": reconstruct_s,
        "solver_s_total": float(json.loads(str(solver["meta_json"]))["seconds_total"]),
        "final_train_deviance": fit.history[-1].get("train_deviance"),
        "final_val_deviance": fit.history[-1].get("val_deviance"),
        "peak_memory_mb": peak_memory_bytes(device) / 2**20,
        "n_pixels": metrics["n_pixels"],
        "projection_steps": args.projection_steps,
        "projection_passes": args.projection_passes,
        **network,
    }
    (out / "metrics.json").write_text(json.dumps({**metrics, **figures}, indent=2) + "\n")
    rec.record(f"siemens crop={args.crop} gs={args.gridsize} epochs={args.epochs}"
               + (f" modes={args.probe_modes}" if args.probe_modes > 1 else "")
               + (f" probe={args.probe_file.name}" if args.probe_file != SOLVER else "")
               + (f" projection={args.projection_steps}" if args.projection_steps else "")
               + (f" passes={args.projection_passes}" if args.projection_passes else ""),
               {"crop": args.crop, "gridsize": args.gridsize, "epochs": args.epochs,
                "n_filters_scale": args.n_filters_scale, "batch_size": args.batch_size,
                "lr": args.lr, "projection_steps": args.projection_steps,
                "projection_passes": args.projection_passes,
                "probe_modes": args.probe_modes, "probe_file": str(args.probe_file)}, figures)


if __name__ == "__main__":
    main()
