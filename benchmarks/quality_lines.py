"""Reconstruction quality on the simulated ``lines`` object with the reference's recipe.

The recipe is the reference's own defaults (docs/DESIGN.md §7.9) at N = 64, gridsize 2:
the full-size network (``n_filters_scale`` 2, sigmoid amplitude), batch 16 groups, Adam at
1e-3, reduce-on-plateau (factor 0.5, patience 2, floor 1e-4) on the validation loss, early
stopping after 3 epochs without improvement of the training loss, the last 5 % of the groups
held out, Poisson NLL weight 1, 1e9 photons per pattern, 50 epochs. The data is a dense
26 x 26 raster (676 patterns, about 5 px steps, 0.5 px jitter) over a ``lines`` object at the
reference's feature scale (``--zoom 1``), scanned with pinn's default probe.

The model is trained, every position is reconstructed and stitched (probe-weighted), and the
amplitude and phase are scored against the ground truth over the well-covered region after
subpixel registration (``pinn.evaluate``: scikit-image SSIM, PSNR, FRC). The training and
reconstruction wall times are recorded with the scores.

    python benchmarks/quality_lines.py                       # the reference's recipe
    python benchmarks/quality_lines.py --epochs 10           # a shorter run
    python benchmarks/quality_lines.py --epochs 120 --plateau-patience 8 \
        --early-stopping-patience 0 --precision bf16 --out benchmarks/results/quality_lines_long
    python benchmarks/quality_lines.py --zoom 3 --n-filters-scale 1 --batch-size 8  # demo-like

Writes figures and metrics to --out (default benchmarks/results/quality_lines/) and one JSON
record to results/quality_lines.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, Recorder, device_from, peak_memory_bytes, reset_peak_memory

from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import simulate
from pinn.evaluate import evaluate
from pinn.fit import train_scan
from pinn.metrics import align_phase
from pinn.plotting import save_side_by_side
from pinn.reconstruct import reconstruct


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50, help="the reference's nepochs: 50")
    parser.add_argument("--n-scans", type=int, default=676)
    parser.add_argument("--object-size", type=int, default=192)
    parser.add_argument("--zoom", type=int, default=1, help="feature scale of the object")
    parser.add_argument("--photons", type=float, default=1e9)
    parser.add_argument("--gridsize", type=int, default=2)
    parser.add_argument("--n-filters-scale", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's rate (the reference's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--plateau-patience", type=int, default=2)
    parser.add_argument("--early-stopping-patience", type=int, default=3)
    parser.add_argument("--precision", choices=["off", "bf16"], default="off",
                        help="bf16 autocast of the network (the reference trains in float32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = device_from(args.device)
    out = args.out or RESULTS / "quality_lines"
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder("quality_lines", device, args.json)
    scan = simulate("lines", n_scans=args.n_scans, size=64, photons=args.photons,
                    seed=args.seed, scan="raster", object_size=args.object_size,
                    jitter_px=0.5, zoom=args.zoom)

    config = Config(
        model=ModelConfig(size_px=64, gridsize=args.gridsize,
                          n_filters_scale=args.n_filters_scale),
        training=TrainingConfig(epochs=args.epochs, batch_size=args.batch_size,
                                learning_rate=args.lr, plateau_patience=args.plateau_patience,
                                early_stopping_patience=args.early_stopping_patience,
                                precision=args.precision, seed=args.seed,
                                log_images=False))
    reset_peak_memory(device)
    tick = time.perf_counter()
    fit = train_scan(scan, config, out / "run", overwrite=True, device=device)
    train_s = time.perf_counter() - tick

    tick = time.perf_counter()
    result = reconstruct(fit.model, scan, device=device, progress=False,
                         neighbors=config.data.neighbors, seed=config.data.grouping_seed)
    reconstruct_s = time.perf_counter() - tick
    metrics = evaluate(result, scan.object)
    covered = result.covered()
    truth = result.object_window(scan.object)
    phase = align_phase(result.object.numpy(), truth.numpy(), covered.numpy())
    view = covered.numpy()
    save_side_by_side(out / "amplitude_pinn_vs_truth.png",
                      [result.amplitude.numpy(), truth.abs().numpy()],
                      ["pinn amplitude", "ground truth amplitude"], [view, view], cmap="gray")
    save_side_by_side(out / "phase_pinn_vs_truth.png",
                      [np.angle(phase), truth.angle().numpy()],
                      ["pinn phase (rad)", "ground truth phase (rad)"], [view, view],
                      cmap="twilight")
    figures = {
        "amplitude_ssim": metrics["amplitude_ssim"], "phase_ssim": metrics["phase_ssim"],
        "amplitude_psnr": metrics["amplitude_psnr"], "phase_psnr": metrics["phase_psnr"],
        "amplitude_frc_half_bit": metrics.get("amplitude_frc_half_bit"),
        "epochs_run": len(fit.history), "train_s": train_s, "reconstruct_s": reconstruct_s,
        "target_amplitude_ssim": 0.95, "meets_target": metrics["amplitude_ssim"] >= 0.95,
        "peak_memory_mb": peak_memory_bytes(device) / 2**20,
        "final_train_deviance": fit.history[-1].get("train_deviance"),
    }
    (out / "metrics.json").write_text(json.dumps({**metrics, **figures}, indent=2) + "\n")
    rec.record(f"lines N=64 gs={args.gridsize} nfs={args.n_filters_scale} zoom={args.zoom} "
               f"epochs={args.epochs} plateau={args.plateau_patience} {args.precision}",
               {key: value for key, value in vars(args).items() if key not in ("out", "json")},
               figures)


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main()
