"""Network, then refine, on measured data: does the network's guess help the refinement?

The APS Velociprobe Siemens star (516 measured 128 x 128 patterns), scored against the
iterative solver's phase (pty-chi LSQML, 100 epochs, 4 probe modes, position correction) with
benchmarks/refine_real.py's scoring (issue 12's). A PtychoPINN model is trained on the full
128 x 128 patterns with the solver's dominant probe mode (benchmarks/real_siemens.py's recipe:
gridsize 1, n_filters_scale 1, batch 8), once: it is cached in --cache (git-ignored) and
reused while the recipe is the same. Then, for each number of refinement epochs E, the same
refinement (K probe modes from that dominant mode, pinn.refine's defaults otherwise) runs from
a flat object (RefineConfig's defaults) and from the network's stitched object
(pinn.refine.reconstruct_and_refine, at network_refine_config's lower object learning rate,
or each of --network-lr), and each is scored: phase SSIM vs the solver, final deviance per
pixel, seconds.

    python benchmarks/refine_network.py --net-epochs 20 --epochs 3 5 10 15
    python benchmarks/refine_network.py --solver-modes --epochs 5 10
    python benchmarks/refine_network.py --epochs 5 10 --network-lr 0.05 0.02 0.01 0.005

With ``--solver-modes`` the solver's ``--probe-modes`` strongest modes replace its dominant
mode everywhere: the network trains with them and both refinements start from them. The
model's own reconstruction (network, per-group steps, passes over the scan) is scored too.

One JSON record per run goes to results/refine_network.jsonl, the table to --out/table.md
and the phases (the model's reconstruction, both refinements at the largest E, the solver) to
--out. The data is read from ../shared/data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, Recorder, device_from
from real_siemens import MEASURED, SOLVER, solver_object_in_pinn_frame
from refine_real import object_in_frame, score
from pinn.archive import load_archive
from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import load_scan
from pinn.fit import train_scan
from pinn.plotting import save_side_by_side
from pinn.reconstruct import Reconstruction, reconstruct
from pinn.refine import (RefineConfig, network_refine_config, reconstruct_and_refine,
                         refine_scan)
from pinn.refine.network import NETWORK_LEARNING_RATE


def network_config(args: argparse.Namespace) -> Config:
    modes = args.probe_modes if args.solver_modes else 1
    return Config(model=ModelConfig(size_px=128, gridsize=1, n_filters_scale=1,
                                    probe_modes=modes),
                  training=TrainingConfig(epochs=args.net_epochs, batch_size=8,
                                          learning_rate=1e-3, plateau_patience=6,
                                          early_stopping_patience=0, seed=args.seed))


def trained_model(scan, args: argparse.Namespace, device) -> tuple[object, float]:
    """The cached archive if it was trained with this recipe (its model and training
    configuration, read through the archive's schema upgrade), else a newly trained one; and
    the training's wall seconds (recorded when it was trained)."""
    config = network_config(args)
    run = args.cache / "run"
    stamp = args.cache / "network.json"
    if stamp.exists() and (run / "model").is_dir():
        archive = load_archive(run / "model", device=str(device))
        if (archive.config.model, archive.config.training) == (config.model, config.training):
            return archive, json.loads(stamp.read_text())["train_s"]
    start = time.perf_counter()
    train_scan(scan, config, run, overwrite=True, device=device, data_path=MEASURED,
               verbose=False)
    train_s = time.perf_counter() - start
    stamp.write_text(json.dumps({"config": json.loads(json.dumps(dataclasses.asdict(config))),
                                 "train_s": train_s}, indent=2) + "\n")
    return load_archive(run / "model", device=str(device)), train_s


def network_in_frame(result: Reconstruction, shape: tuple[int, int]) -> np.ndarray:
    """The network's stitch on the object frame ``(H, W)`` (1 where it has nothing)."""
    obj = result.object.numpy()
    out = np.ones(shape, dtype=np.complex128)
    oy, ox = result.origin_px
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + obj.shape[0], shape[0]), min(ox + obj.shape[1], shape[1])
    out[y0:y1, x0:x1] = obj[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return np.where(np.abs(out) > 0, out, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 5, 10, 15])
    parser.add_argument("--probe-modes", type=int, default=4)
    parser.add_argument("--network-lr", type=float, nargs="+", default=[NETWORK_LEARNING_RATE],
                        help="object learning rates of the network start (default: pinn's; "
                             "the flat start always uses RefineConfig's)")
    parser.add_argument("--solver-modes", action="store_true",
                        help="start from the solver's --probe-modes strongest modes (the network "
                             "trains with them, the refinements start from them) instead of its "
                             "dominant mode and added modes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", type=Path, default=None,
                        help="default: results/refine_network (with --solver-modes: "
                             "results/refine_network_solver-modes)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not MEASURED.exists():
        raise SystemExit(f"the measured data is not at {MEASURED}")
    device = device_from(args.device)
    if args.cache is None:
        args.cache = RESULTS / ("refine_network_solver-modes" if args.solver_modes
                                else "refine_network")
    out = args.out or args.cache
    out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    rec = Recorder("refine_network", device, args.json)

    solver = dict(np.load(SOLVER))
    scan = load_scan(MEASURED, probe_path=SOLVER)
    if not args.solver_modes:
        scan = dataclasses.replace(scan, probe=scan.dominant_probe)  # the solver's dominant mode
    truth = solver_object_in_pinn_frame(scan, solver).numpy()
    centres = scan.positions.numpy()
    archive, train_s = trained_model(scan, args, device)

    rows = []
    images = {}
    # the model's own reconstruction (network, per-group steps, passes over the scan)
    start = time.perf_counter()
    model_result = reconstruct(archive.model, scan, device=str(device), progress=False)
    model_s = time.perf_counter() - start
    figures = score(network_in_frame(model_result, truth.shape), truth, centres)
    images["model"] = figures.pop("images")[0]
    rows.append({"start": "model (no refinement)", "epochs": 0, "learning_rate": None,
                 "phase_ssim": figures["phase_ssim"], "deviance": None, "seconds": model_s,
                 "train_s": train_s})
    rec.record(f"siemens model K={archive.config.model.probe_modes}"
               + (" solver modes" if args.solver_modes else ""),
               {"net_epochs": args.net_epochs, "model": dataclasses.asdict(archive.config.model)},
               rows[-1])
    network = None
    for epochs in sorted(args.epochs):
        starts = [("flat", RefineConfig(epochs=epochs, probe_modes=args.probe_modes,
                                        seed=args.seed))]
        starts += [("network", network_refine_config(epochs=epochs, probe_modes=args.probe_modes,
                                                     seed=args.seed, learning_rate=lr))
                   for lr in args.network_lr]
        for label, config in starts:
            if label == "flat":
                start = time.perf_counter()
                result = refine_scan(scan, config, device=str(device), verbose=False)
                seconds, network_s = time.perf_counter() - start, None
            else:
                run = reconstruct_and_refine(archive, scan, config=config, device=str(device))
                result, seconds, network_s = run.refined, run.refine_s, run.network_s
                if network is None:
                    network = run.network
                    figures = score(network_in_frame(network, truth.shape), truth, centres)
                    images["network start"] = figures.pop("images")[0]
                    rows.insert(1, {"start": "network start (the model without its passes)",
                                    "epochs": 0, "learning_rate": None,
                                    "phase_ssim": figures["phase_ssim"], "deviance": None,
                                    "seconds": network_s, "train_s": train_s})
            figures = score(object_in_frame(result, truth.shape), truth, centres)
            rec_phase, ref_phase = figures.pop("images")
            images[(label, config.learning_rate)], images["solver"] = rec_phase, ref_phase
            row = {"start": label, "epochs": epochs, "learning_rate": config.learning_rate,
                   "phase_ssim": figures["phase_ssim"],
                   "deviance": result.history[-1]["train_deviance"], "seconds": seconds,
                   "network_s": network_s,
                   "deviance_curve": [round(h["train_deviance"], 4) for h in result.history],
                   "power_fraction": [round(float(p), 4) for p in result.power_fraction]}
            rows.append(row)
            rec.record(f"siemens refine from {label} E={epochs} K={args.probe_modes} "
                       + ("solver modes " if args.solver_modes else "") +
                       f"lr={config.learning_rate:g}",
                       {"start": label, "net_epochs": args.net_epochs,
                        **dataclasses.asdict(config)}, row)
            print(json.dumps(row), flush=True)

    longest = max(args.epochs)
    flat_lr, net_lr = RefineConfig().learning_rate, args.network_lr[0]
    save_side_by_side(out / "phase_network_refine_vs_solver.png",
                      [images["model"], images[("flat", flat_lr)],
                       images[("network", net_lr)], images["solver"]],
                      ["the model (no refinement)", f"refined from flat, {longest} epochs",
                       f"refined from the network, {longest} epochs", "pty-chi lsqml"],
                      [np.ones_like(images["solver"], bool)] * 4, cmap="twilight")
    lines = ["| start | object learning rate | refinement epochs | phase SSIM vs solver | "
             "deviance / px | seconds |", "|---|---|---|---|---|---|"]
    for row in rows:
        deviance = "" if row["deviance"] is None else f"{row['deviance']:.3f}"
        rate = "" if row["learning_rate"] is None else f"{row['learning_rate']:g}"
        lines.append(f"| {row['start']} | {rate} | {row['epochs']} | {row['phase_ssim']:.3f} | "
                     f"{deviance} | {row['seconds']:.1f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
