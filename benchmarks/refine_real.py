"""Physics refinement on measured data: the APS Velociprobe Siemens star against pty-chi.

`pinn refine`'s engine (pinn.refine.refine_scan) on the 516 measured 128 x 128 patterns, from
a flat object, scored against the iterative solver's phase (pty-chi LSQML, 100 epochs, 4 probe
modes, position correction; 721 s). Starts:

    python benchmarks/refine_real.py --start solver-mode     # the solver's dominant mode + 3
    python benchmarks/refine_real.py --start guess --refine-positions --epochs 40
                                                              # the file's zone-plate guess

Scoring (as issue 12 defines it): the reconstruction is registered onto the solver's object
by phase correlation, a constant phase and a linear phase ramp are removed, and the phase SSIM
(scikit-image's definition, the solver's data range) is taken over the box spanned by the
probe centres less 12 px. One JSON record goes to results/refine_real.jsonl; the phase images
side by side to --out. The data is read from ../shared/data (never copied).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, Recorder, device_from, parse_dataclass_settings
from real_siemens import MEASURED, SOLVER, solver_object_in_pinn_frame
from pinn.data import load_scan
from pinn.metrics import align_phase, register_translation, shift_image, ssim
from pinn.plotting import save_side_by_side
from pinn.refine import RefineConfig, refine_scan

BOX_INSET_PX = 12


def object_in_frame(result, shape: tuple[int, int]) -> np.ndarray:
    """The refined canvas placed on the object frame ``(H, W)`` (1 where it has nothing)."""
    out = np.ones(shape, dtype=np.complex128)
    oy, ox = result.origin_px
    obj = result.object.numpy()
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + obj.shape[0], shape[0]), min(ox + obj.shape[1], shape[1])
    out[y0:y1, x0:x1] = obj[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return out


def score(recon: np.ndarray, truth: np.ndarray, centres: np.ndarray) -> dict:
    """Phase SSIM of ``recon`` against ``truth`` (both ``(H, W)`` complex, one frame) over the
    box spanned by ``centres`` ``(M, 2)`` less BOX_INSET_PX, after registration and removal of
    a constant phase and a linear phase ramp."""
    low = np.ceil(centres.min(axis=0)).astype(int) + BOX_INSET_PX
    high = np.floor(centres.max(axis=0)).astype(int) - BOX_INSET_PX
    box = (slice(low[0], high[0]), slice(low[1], high[1]))
    ref, rec = truth[box], recon[box]
    shift = register_translation(ref, rec)
    rec = shift_image(rec, shift)
    aligned = align_phase(rec, ref)
    ref_phase, rec_phase = np.angle(ref), np.angle(aligned)
    data_range = float(ref_phase.max() - ref_phase.min())
    return {"phase_ssim": ssim(ref_phase, rec_phase, data_range), "shift_px": list(shift),
            "box": [int(low[0]), int(high[0]), int(low[1]), int(high[1])],
            "images": (rec_phase, ref_phase)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", choices=["solver-mode", "guess"], default="solver-mode")
    parser.add_argument("--probe-modes", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="default: RefineConfig's")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--probe-lr", type=float, default=None)
    parser.add_argument("--refine-positions", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="further RefineConfig overrides")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not MEASURED.exists():
        raise SystemExit(f"the measured data is not at {MEASURED}")
    device = device_from(args.device)
    out = args.out or RESULTS / f"refine_real_{args.start}"
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder("refine_real", device, args.json)

    solver = dict(np.load(SOLVER))
    scan = load_scan(MEASURED, probe_path=SOLVER if args.start == "solver-mode" else None)
    # the solver's dominant mode alone (its file holds all four; the target gives one)
    scan = dataclasses.replace(scan, probe=scan.dominant_probe)
    truth = solver_object_in_pinn_frame(scan, solver).numpy()
    settings = {k: v for k, v in {"epochs": args.epochs, "batch_size": args.batch_size,
                                  "learning_rate": args.lr, "probe_lr": args.probe_lr}.items()
                if v is not None}
    settings.update(parse_dataclass_settings(RefineConfig, args.set))
    config = RefineConfig(probe_modes=args.probe_modes, refine_positions=args.refine_positions,
                          seed=args.seed, **settings)
    start = time.perf_counter()
    result = refine_scan(scan, config, device=str(device), verbose=False)
    seconds = time.perf_counter() - start
    figures = score(object_in_frame(result, truth.shape), truth, scan.positions.numpy())
    rec_phase, ref_phase = figures.pop("images")
    save_side_by_side(out / "phase_refined_vs_solver.png", [rec_phase, ref_phase],
                      ["pinn refine phase (rad)", "pty-chi lsqml phase (rad)"],
                      [np.ones_like(rec_phase, bool)] * 2, cmap="twilight")
    moved = (result.positions - result.positions_initial).norm(dim=1)
    figures.update({
        "seconds": seconds, "epochs": config.epochs,
        "seconds_per_epoch": seconds / config.epochs,
        # the engine's own clock of each epoch (without the set-up and the result's assembly)
        "epoch_seconds": [round(h["seconds"], 3) for h in result.history],
        "final_deviance": result.history[-1]["train_deviance"],
        "deviance_curve": [round(h["train_deviance"], 4) for h in result.history],
        "power_fraction": [round(float(p), 4) for p in result.power_fraction],
        "position_change_px_max": float(moved.max()),
    })
    (out / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    rec.record(f"siemens refine start={args.start} K={args.probe_modes} "
               f"positions={args.refine_positions}",
               {"start": args.start, **dataclasses.asdict(config)}, figures)


if __name__ == "__main__":
    main()
