"""Time to quality: reconstruction SSIM against training wall-clock for every generator.

For each object family (``lines`` at the reference's scale, ``grf``, ``siemens``) a scan is
simulated with the geometry of ``quality_lines.py`` (N = 64, gridsize 2, a dense 26 x 26
raster of 676 patterns over a 192 x 192 object, 0.5 px jitter, 1e9 photons per pattern,
pinn's default probe; ``--size``, ``--gridsize``, ``--object-size`` and ``--n-scans`` change
it, e.g. to the reference's other case, N = 128 at gridsize 1). Each case (a generator and an output parameterisation) is trained
from the same seed with the engine ``pinn train`` uses, for a budget of training time;
after every epoch the whole scan is reconstructed and stitched (probe-weighted) and its
amplitude and phase SSIM against the ground truth are recorded (``pinn.evaluate``, after
subpixel registration, over the well-covered region). The evaluation's own time is not
counted as training time.

Time is measured two ways: wall-clock seconds, and *compute seconds*, the process's CPU time
divided by its thread count (``time.process_time() / torch.get_num_threads()``). On a quiet
machine whose threads are all busy the two agree; on a shared machine (other processes
taking cores) the wall clock of a case depends on what else ran at the time, while its
compute seconds do not, so budgets, thresholds and plots use compute seconds and the wall
clock is recorded beside them.

Per case: the SSIM curve, the training compute seconds to reach amplitude SSIM 0.5 / 0.8 / 0.9 (None
when not reached), the best SSIMs, parameters, the median training-step time and the peak
resident memory. Writes one JSON record per case to ``results/time_to_quality.jsonl`` and
one PNG of the amplitude SSIM curves per object to ``results/time_to_quality/``.

    python benchmarks/time_to_quality.py --budget-s 120
    python benchmarks/time_to_quality.py --objects lines --generators unet --outputs real_imag \\
        --batch-size 8 --lr 2e-3 --budget-s 150
    python benchmarks/time_to_quality.py --objects lines --cases cnn:amp_phase \\
        --schedule cosine --lr 2e-3 --budget-s 90
    python benchmarks/time_to_quality.py --replot benchmarks/results/time_to_quality.jsonl

Two diagnostics place the network's curve: ``--target truth`` trains the same network
against the ground truth instead of the data (the mean squared error of each group's object
centre, the ``N/2 x N/2`` window every member covers, against the true object there): how
fast the generator can fit the answer when it is given, whatever the physics.
``--refine-baseline E [E ...]`` also runs the physics refinement (:func:`pinn.refine.refine_scan`,
its defaults, fixed probe) from a flat object for E epochs on the same scan: the quality the
data allow without a network, and how long it takes.

With projection steps (``--projection-steps K``, pinn's default 16: the model's own
error-reduction updates of each group at inference, docs/DESIGN.md §11) or passes over the
scan (``--projection-passes K``, pinn's default 4, §11.4) every evaluation scores the model's
output and, under ``network_*``, the network's object alone; the record's ``untrained`` entry
scores the untrained network (a nearly flat object) before any training, so with the steps
and passes it is what they achieve alone. ``--eval-every-s S`` evaluates after the
first epoch past every S training seconds and near the budget instead of after every epoch.

``--schedule cosine`` trains as ``pinn train --max-time`` with ``training.schedule=cosine``
does: the learning rate decays from ``--lr`` to ``--min-lr`` over the budget
(``TrainingConfig.max_time_s``) and the engine stops at it. So that the engine's budget is
the benchmark's budget, the engine's clock is replaced, for that case, by the benchmark's
one (compute seconds without the evaluation, :class:`ComputeClock`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, Recorder, device_from, peak_memory_bytes, reset_peak_memory

from pinn.config import ModelConfig, TrainingConfig
from pinn.data import GroupDataset, group_positions, simulate
from pinn.data.dataset import Subset
from pinn.engine import seed_everything, train
from pinn.errors import TrainingError
from pinn.evaluate import evaluate
from pinn import ops
from pinn.model import PtychoLoss, build_model
from pinn.plotting import encode_png, plot_curves
from pinn.reconstruct import reconstruct
from pinn.refine import RefineConfig, refine_scan
from pinn.refine.network import as_reconstruction

THRESHOLDS = (0.5, 0.8, 0.9)


class BudgetReached(Exception):
    """Raised from the per-epoch hook to end a case at its time budget."""


class ComputeClock:
    """A stand-in for the ``time`` module inside the engine whose ``perf_counter`` counts
    training compute seconds (process CPU time / threads, less the evaluation's CPU time),
    so that a budget and a schedule planned over it (``TrainingConfig.max_time_s``) follow
    the benchmark's clock; everything else is the real ``time``."""

    def __init__(self, clock: dict, threads: int) -> None:
        self._clock, self._threads = clock, threads

    def perf_counter(self) -> float:
        return (time.process_time() - self._clock["eval_cpu"]) / self._threads

    def __getattr__(self, name: str):
        return getattr(time, name)


# The modules whose clock sets ``TrainingState.elapsed_s`` (the budget and the cosine's
# progress). pinn.engine.epoch keeps the real clock: its per-step timer starts from a
# ``perf_counter`` bound at import, and its wall-clock step estimate only makes the engine
# stop a little early (the case then ends at its last whole or partial epoch).
ENGINE_CLOCK_MODULES = ("pinn.engine.session", "pinn.engine.train")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", nargs="+", default=["lines", "grf", "siemens"])
    parser.add_argument("--generators", nargs="+", default=["cnn", "unet", "fno"])
    parser.add_argument("--outputs", nargs="+", default=["amp_phase", "real_imag"])
    parser.add_argument("--cases", nargs="*", default=None, metavar="GENERATOR:OUTPUT",
                        help="these pairs instead of every generator with every output (none: "
                             "no network, e.g. only --refine-baseline)")
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="training compute seconds per case (evaluation not counted)")
    parser.add_argument("--size", type=int, default=64, help="pattern side N")
    parser.add_argument("--n-scans", type=int, default=676)
    parser.add_argument("--object-size", type=int, default=192)
    parser.add_argument("--photons", type=float, default=1e9)
    parser.add_argument("--gridsize", type=int, default=2)
    parser.add_argument("--n-filters-scale", type=int, default=2, help="the CNN's width")
    parser.add_argument("--width", type=int, default=32, help="the U-Net's and FNO's width")
    parser.add_argument("--fno-modes", type=int, default=16)
    parser.add_argument("--projection-steps", type=int, default=ModelConfig().projection_steps,
                        help="error-reduction steps per group at inference (0: the network "
                             "alone; default: pinn's)")
    parser.add_argument("--projection-passes", type=int,
                        default=ModelConfig().projection_passes,
                        help="passes of error reduction over the whole scan after stitching "
                             "(0: none; default: pinn's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=1e-4)
    parser.add_argument("--adam-beta2", type=float, default=0.999,
                        help="Adam's second-moment decay (TrainingConfig.adam_beta2)")
    parser.add_argument("--plateau-patience", type=int, default=2)
    parser.add_argument("--early-stopping-patience", type=int, default=3)
    parser.add_argument("--schedule", choices=["plateau", "cosine"], default="plateau",
                        help="cosine: a decay from --lr to --min-lr planned over --budget-s "
                             "(TrainingConfig.max_time_s), as `pinn train --max-time`")
    parser.add_argument("--precision", choices=["off", "bf16"], default="off")
    parser.add_argument("--target", choices=["physics", "truth"], default="physics",
                        help="truth: a diagnostic, train against the ground truth instead of "
                             "the data")
    parser.add_argument("--refine-baseline", type=int, nargs="*", default=[], metavar="E",
                        help="also refine each scan from a flat object for E epochs (no network)")
    parser.add_argument("--eval-every-s", type=float, default=0.0,
                        help="evaluate after the first epoch past every S training seconds "
                             "(and near the end) instead of after every epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="", help="a label added to every case name")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--replot", type=Path, default=None, metavar="JSONL",
                        help="only redraw the PNGs from the records in JSONL")
    return parser.parse_args()


def make_scan(kind: str, args: argparse.Namespace):
    return simulate(kind, n_scans=args.n_scans, size=args.size, photons=args.photons,
                    seed=args.seed, scan="raster", object_size=args.object_size,
                    jitter_px=0.5)


class TruthLoss:
    """The diagnostic loss of ``--target truth``: the mean squared error of each group's object
    (the centre ``N/2 x N/2`` of the group canvas, which every member's decoded window covers)
    against the true object at the group's centroid (sampled bilinearly, as the model samples
    its canvas). Returned under the metric names the engine logs."""

    def __init__(self, scan, groups) -> None:
        n = scan.N
        centroids = scan.positions[torch.as_tensor(groups.indices)].mean(dim=1)  # (G, 2)
        self.quarter = n // 4
        self.truth = ops.extract_patches(scan.object, centroids.to(torch.float32), n // 2)

    def __call__(self, model, batch):
        out = model(batch["amplitude"], batch["offsets"])
        q = self.quarter
        error = out.object[:, q:-q, q:-q] - self.truth[batch["index"]].to(out.object.device)
        loss = error.abs().square().mean()
        return loss, {"nll": loss.detach(), "mae": loss.detach(), "deviance": loss.detach()}


def refine_baseline(scan, epochs: int) -> dict:
    """The physics refinement from a flat object (defaults, fixed probe): SSIM and seconds."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    result = refine_scan(scan, RefineConfig(epochs=epochs, refine_probe=False), verbose=False)
    wall_s = time.perf_counter() - start_wall
    compute_s = (time.process_time() - start_cpu) / torch.get_num_threads()
    metrics = evaluate(as_reconstruction(result), scan.object)
    return {"epochs": epochs, "wall_s": wall_s, "train_s": compute_s,
            "final_amplitude_ssim": metrics["amplitude_ssim"],
            "final_phase_ssim": metrics["phase_ssim"]}


def run_case(scan, model_config: ModelConfig, train_config: TrainingConfig, budget_s: float,
             device: torch.device, target: str = "physics", eval_every_s: float = 0.0) -> dict:
    """Train one case for ``budget_s`` training seconds; the SSIM after every epoch (with
    ``eval_every_s``, after the first epoch past each such interval and near the end).
    ``target="truth"``: against the ground truth (:class:`TruthLoss`) instead of the data."""
    groups = group_positions(scan.positions, model_config.gridsize, neighbors=4, seed=0)
    dataset = GroupDataset(scan, groups)
    loss_fn = TruthLoss(scan, groups) if target == "truth" else PtychoLoss()
    n_val = int(len(dataset) * train_config.validation_fraction)
    train_set = Subset(dataset, torch.arange(len(dataset) - n_val))
    val_set = Subset(dataset, torch.arange(len(dataset) - n_val, len(dataset)))
    seed_everything(train_config.seed, train_config.deterministic)
    model = build_model(model_config, probe=scan.probe, intensity_scale=dataset.intensity_scale)
    params = sum(p.numel() for p in model.parameters())
    curve: list[dict] = []
    threads = torch.get_num_threads()
    steps, passes = model_config.projection_steps, model_config.projection_passes
    physics = bool(steps or passes)  # the model's output is more than the network's

    def measure(m, train_s: float, wall_s: float) -> None:
        """SSIMs of the stitched reconstruction as the model gives it and, with projection
        steps or passes, of the network's output alone."""
        point = {"train_s": train_s, "wall_s": wall_s}
        alone = {"projection_steps": 0, "projection_passes": 0}
        for prefix, options in (("", {}), ("network_", alone)) if physics else (("", {}),):
            result = reconstruct(m, scan, progress=False, device=device, neighbors=4, seed=0,
                                 **options)
            metrics = evaluate(result, scan.object)
            point[f"{prefix}amplitude_ssim"] = metrics["amplitude_ssim"]
            point[f"{prefix}phase_ssim"] = metrics["phase_ssim"]
        curve.append(point)

    measure(model, 0.0, 0.0)  # the untrained network: with steps or passes, the physics alone
    clock = {"wall": time.perf_counter(), "cpu": time.process_time(), "eval_wall": 0.0,
             "eval_cpu": 0.0}

    epochs = {"last_s": 0.0, "evaluated_s": 0.0, "count": 0}

    def after_epoch(m) -> dict:
        wall_s = time.perf_counter() - clock["wall"] - clock["eval_wall"]
        train_s = (time.process_time() - clock["cpu"] - clock["eval_cpu"]) / threads
        epoch_s, epochs["last_s"] = train_s - epochs["last_s"], train_s
        epochs["count"] += 1
        # every eval_every_s training seconds, and the epoch that may be the last one
        if (train_s >= epochs["evaluated_s"] + eval_every_s
                or train_s + 1.5 * epoch_s >= budget_s):
            wall_tick, cpu_tick = time.perf_counter(), time.process_time()
            measure(m, train_s, wall_s)
            curve[-1]["epoch"] = epochs["count"]
            epochs["evaluated_s"] = train_s
            clock["eval_wall"] += time.perf_counter() - wall_tick
            clock["eval_cpu"] += time.process_time() - cpu_tick
        if train_s >= budget_s:
            raise BudgetReached
        return {}

    reset_peak_memory(device)
    diverged = None
    modules = ([importlib.import_module(name) for name in ENGINE_CLOCK_MODULES]
               if train_config.max_time_s is not None else [])
    for module in modules:
        module.time = ComputeClock(clock, threads)
    try:
        train(model, loss_fn, train_set, val_set, train_config, device=device,
              preview=after_epoch, items_per_sample=model_config.channels, verbose=False)
    except BudgetReached:
        pass
    except TrainingError as exc:  # the engine gave up on non-finite steps: a result, too
        diverged = str(exc)
    finally:
        for module in modules:
            module.time = time
    untrained, curve = curve[0], curve[1:]
    if not curve:
        curve.append({"train_s": math.nan, "wall_s": math.nan, "amplitude_ssim": math.nan,
                      "phase_ssim": math.nan})
    steps_per_epoch = math.ceil(len(train_set) / train_config.batch_size)
    epoch_s = [(point["train_s"] - previous["train_s"])
               / (point.get("epoch", 1) - previous.get("epoch", 0))
               for previous, point in zip([{"train_s": 0.0, "epoch": 0}] + curve, curve)]
    best_amp = max(point["amplitude_ssim"] for point in curve)
    best_phase = max(point["phase_ssim"] for point in curve)
    reached = {f"time_to_{t}_s": next((p["train_s"] for p in curve
                                       if p["amplitude_ssim"] >= t), None) for t in THRESHOLDS}
    network = {}
    if physics:
        network = {f"final_network_{k}_ssim": curve[-1].get(f"network_{k}_ssim", math.nan)
                   for k in ("amplitude", "phase")}
        network.update({f"network_time_to_{t}_s": next(
            (p["train_s"] for p in curve if p.get("network_amplitude_ssim", -1) >= t), None)
            for t in THRESHOLDS})
    return {
        "parameters": params,
        "diverged": diverged,
        "epochs": epochs["count"],
        "step_ms": 1000 * statistics.median(epoch_s) / steps_per_epoch,  # compute ms
        "peak_memory_mb": peak_memory_bytes(device) / 2**20,
        "final_amplitude_ssim": curve[-1]["amplitude_ssim"],
        "final_phase_ssim": curve[-1]["phase_ssim"],
        "best_amplitude_ssim": best_amp,
        "best_phase_ssim": best_phase,
        "train_s": curve[-1]["train_s"],
        "wall_s": curve[-1]["wall_s"],
        **reached,
        **network,
        "projection_steps": steps,
        "projection_passes": passes,
        "untrained": untrained,
        "curve": curve,
    }


def save_plot(path: Path, title: str, curves: dict[str, list[dict]], key: str) -> None:
    """One PNG: ``key`` against training compute seconds, a curve per case (legend names
    shortened to fit one row: ``amp_phase`` -> ``a/p``, ``real_imag`` -> ``r/i``)."""
    short = {"amp_phase": "a/p", "real_imag": "r/i"}
    image = plot_curves({" ".join(short.get(w, w) for w in name.split()):
                         (np.array([p["train_s"] for p in c]), np.array([p[key] for p in c]))
                         for name, c in curves.items()},
                        title=title, xlabel="training compute seconds", size=(380, 920))
    path.write_bytes(encode_png(image))


def network_curve(curve: list[dict]) -> list[dict]:
    """The network-alone SSIMs of a curve with projection steps, under the keys the plots read
    (NaN where a point has none, e.g. a diverged case's placeholder)."""
    return [{**p, "amplitude_ssim": p.get("network_amplitude_ssim", math.nan),
             "phase_ssim": p.get("network_phase_ssim", math.nan)} for p in curve]


def replot(records_path: Path, out: Path) -> None:
    """Redraw the PNGs of every object and tag (as a run writes them) from a JSONL file of
    earlier records."""
    by_object: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for line in records_path.read_text().splitlines():
        entry = json.loads(line)
        config = entry["config"]
        if "curve" not in entry["figures"]:  # a --refine-baseline record
            continue
        curves = by_object.setdefault((config["object"], config.get("tag", "")), {})
        name = f"{config['generator']} {config['output']}"
        curves[name] = entry["figures"]["curve"]
        if entry["figures"].get("projection_steps") or entry["figures"].get("projection_passes"):
            curves[f"{name} network"] = network_curve(entry["figures"]["curve"])
    for (kind, tag), curves in by_object.items():
        name = f"{kind}_{tag}" if tag else kind
        save_plot(out / f"{name}_amplitude.png", f"{kind}: amplitude ssim", curves,
                  "amplitude_ssim")
        save_plot(out / f"{name}_phase.png", f"{kind}: phase ssim", curves, "phase_ssim")


def main() -> None:
    args = parse_args()
    device = device_from(args.device)
    out = args.out or RESULTS / "time_to_quality"
    out.mkdir(parents=True, exist_ok=True)
    if args.replot is not None:
        replot(args.replot, out)
        return
    rec = Recorder("time_to_quality", device, args.json)
    cosine = args.schedule == "cosine"
    train_config = TrainingConfig(
        epochs=None if cosine else 100_000, max_time_s=args.budget_s if cosine else None,
        schedule=args.schedule, batch_size=args.batch_size, learning_rate=args.lr,
        adam_beta2=args.adam_beta2,
        min_learning_rate=min(args.min_lr, args.lr), plateau_patience=args.plateau_patience,
        early_stopping_patience=args.early_stopping_patience, precision=args.precision,
        seed=args.seed, log_images=True)
    for kind in args.objects:
        scan = make_scan(kind, args)
        curves: dict[str, list[dict]] = {}
        pairs = ([tuple(case.split(":")) for case in args.cases] if args.cases is not None else
                 [(g, o) for g in args.generators for o in args.outputs])
        for generator, output in pairs:
            model_config = ModelConfig(size_px=args.size, gridsize=args.gridsize,
                                       generator=generator, output=output,
                                       n_filters_scale=args.n_filters_scale,
                                       width=args.width, fno_modes=args.fno_modes,
                                       projection_steps=args.projection_steps,
                                       projection_passes=args.projection_passes)
            figures = run_case(scan, model_config, train_config, args.budget_s, device,
                               args.target, args.eval_every_s)
            name = f"{generator} {output}" + (" truth" if args.target == "truth" else "")
            curves[name] = figures["curve"]
            if figures["projection_steps"] or figures["projection_passes"]:
                curves[f"{name} network"] = network_curve(figures["curve"])
            settings = {k: v for k, v in vars(args).items()
                        if k not in ("out", "json", "replot")}
            rec.record(f"{kind} {name}{' ' + args.tag if args.tag else ''}",
                       {**settings, "object": kind, "generator": generator,
                        "output": output,
                        "training": asdict(train_config)},
                       figures)
        for epochs in args.refine_baseline:
            figures = refine_baseline(scan, epochs)
            rec.record(f"{kind} refine {epochs} epochs", {"object": kind, "epochs": epochs,
                                                          "n_scans": args.n_scans,
                                                          "photons": args.photons,
                                                          "seed": args.seed}, figures)
            print(f"{kind}: refinement, {epochs} epochs: amplitude / phase SSIM "
                  f"{figures['final_amplitude_ssim']:.3f} / {figures['final_phase_ssim']:.3f} in "
                  f"{figures['wall_s']:.1f} s")
        if not curves:
            continue
        suffix = f"_{args.tag}" if args.tag else ""
        save_plot(out / f"{kind}{suffix}_amplitude.png",
                  f"{kind}: amplitude ssim", curves, "amplitude_ssim")
        save_plot(out / f"{kind}{suffix}_phase.png", f"{kind}: phase ssim", curves, "phase_ssim")


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main()
