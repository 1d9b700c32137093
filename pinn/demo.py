"""``pinn demo``: the whole cycle on built-in simulated data, with a report.

Simulate a scan of a synthetic object (ground truth known), train a model on it without labels,
save the archive, load it back, reconstruct every position, refine the network's object with
the physics alone for a few epochs (and, for comparison, a flat object for as many), evaluate
each against the ground truth, and write ``report.md`` with the figures and the numbers,
whatever they turn out to be.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pinn.archive import load_archive
from pinn.atomic import atomic_write_bytes
from pinn.config import Config, ModelConfig, TrainingConfig
from pinn.data import simulate, write_npz
from pinn.engine.distributed import resolve_device
from pinn.engine.progress import plural
from pinn.evaluate import evaluate
from pinn.fit import train_scan
from pinn.plotting import save_curves, save_side_by_side
from pinn.reconstruct import reconstruct, save_reconstruction
from pinn.refine import RefineConfig, network_refine_config, refine_from_network, refine_scan
from pinn.refine.network import as_reconstruction, model_probe
from pinn.refine.outputs import save_refinement


@dataclass(frozen=True)
class DemoSettings:
    """What the demo simulates and how it trains, chosen to finish in a few minutes on a
    2-core CPU with a convincing result.

    The reference's ``lines`` object at the reference's own feature scale (``zoom`` 1), scanned
    on a dense jittered raster (15 x 15 positions, about 4.6 px steps for a probe about 22 px
    across), gridsize 2 so that neighbouring patterns constrain each other, the reference's
    network at its full width (``n_filters_scale`` 2), batch 8 and a patient learning-rate
    schedule for 30 epochs; the model then reconstructs with its 16 projection steps per group
    and 4 passes over the scan (``projection_steps``, ``projection_passes``, docs/DESIGN.md
    §11), which restore the fine lines the network alone does not reach in minutes. Measured on
    a quiet 2-core AMD EPYC (2026-12-05 15:15): 2 min 34 s in all with AVX-512, amplitude /
    phase SSIM 0.994 / 0.994 (13:06, before the passes: 0.992 / 0.991; the network alone 0.354
    / 0.343); 3 min 46 s and 0.994 / 0.994 with the ISA capped at AVX2 (17:41; at 11:10, before
    the blur, the synchronisation and the passes, 4 min 14 s and 0.992 / 0.971). 40 epochs took
    5 min 10 s there then (0.992 / 0.973 in 3 min 14 s with AVX-512), hence 30. Before the
    projection steps the demo enlarged the features 3x and halved the network (90 epochs: 0.879
    / 0.896 in 3 min 11 s).

    Then ``refine_epochs`` of physics refinement (:mod:`pinn.refine`, one probe mode, object
    and probe refined) start from the model's stitched object before its passes (at the lower
    learning rate of a network start, :func:`pinn.refine.network_refine_config`), and as many
    from a flat object
    (at the flat start's default): on this scan 10 epochs took 0.5-2 s each way (2 cores of an
    AMD EPYC with AVX-512, shared).
    """

    object_kind: str = "lines"
    zoom: int = 1
    object_size_px: int = 128
    n_scans: int = 225
    scan: str = "raster"
    jitter_px: float = 0.5
    probe: str = "default"
    photons: float = 1e6
    size_px: int = 64
    gridsize: int = 2
    n_filters_scale: int = 2
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    plateau_patience: int = 6
    refine_epochs: int = 10
    projection_steps: int = ModelConfig().projection_steps
    seed: int = 0


QUICK = DemoSettings(object_size_px=96, n_scans=36, epochs=1, batch_size=8, refine_epochs=2)


def run_demo(out_dir: str | os.PathLike, *, device: str = "cpu", quick: bool = False,
             verbose: bool = True, settings: DemoSettings | None = None) -> Path:
    """Run the demo into ``out_dir``; returns the path of ``report.md``.

    Args:
        out_dir: output directory (created; existing demo files are replaced).
        device: where to train and reconstruct.
        quick: a seconds-long run that exercises every step (quality is not the point).
        verbose: print progress.
        settings: override the demo's settings.
    """
    s = settings or (QUICK if quick else DemoSettings())
    resolve_device(device)  # a bad device fails here, before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def say(text: str) -> None:
        if verbose:
            print(text, flush=True)

    start = time.perf_counter()
    say(f"[1/5] simulating a {s.object_kind} object, {s.n_scans} positions, "
        f"{s.photons:.0e} photons per pattern")
    scan = simulate(s.object_kind, n_scans=s.n_scans, size=s.size_px, photons=s.photons,
                    seed=s.seed, scan=s.scan, probe=s.probe, object_size=s.object_size_px,
                    jitter_px=s.jitter_px, zoom=s.zoom)
    data_path = out / "data.npz"
    write_npz(data_path, scan)
    timings["simulate_s"] = time.perf_counter() - start

    say(f"[2/5] training for {plural(s.epochs, 'epoch')} (unsupervised: diffraction and "
        "positions only)")
    config = Config(
        model=ModelConfig(size_px=s.size_px, gridsize=s.gridsize,
                          n_filters_scale=s.n_filters_scale,
                          projection_steps=s.projection_steps),
        training=TrainingConfig(epochs=s.epochs, batch_size=s.batch_size,
                                learning_rate=s.learning_rate, seed=s.seed,
                                plateau_patience=s.plateau_patience,
                                early_stopping_patience=0))
    tick = time.perf_counter()
    fit = train_scan(scan, config, out / "run", overwrite=True, device=device,
                     data_path=data_path, verbose=verbose)
    timings["train_s"] = time.perf_counter() - tick

    say("[3/5] loading the archive and reconstructing every position")
    tick = time.perf_counter()
    archive = load_archive(out / "run" / "model", device=device)
    result = reconstruct(archive, scan, device=device, progress=verbose)
    paths = save_reconstruction(result, out / "reconstruction")
    timings["reconstruct_s"] = time.perf_counter() - tick
    # the refinement starts, as pinn reconstruct --refine does, from the stitched object
    # without the passes over the scan (docs/DESIGN.md §11.4)
    start_object = result if not archive.config.model.projection_passes else reconstruct(
        archive, scan, device=device, progress=False, projection_passes=0)

    say(f"[4/5] evaluating against the ground truth; refining for {s.refine_epochs} epochs from "
        "the network's object, and from a flat object for comparison")
    metrics = evaluate(result, scan.object)
    atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    network_alone = None
    if s.projection_steps:  # the network's own object, for comparison (about a second)
        tick = time.perf_counter()
        network_alone = evaluate(reconstruct(archive, scan, device=device, progress=False,
                                             projection_steps=0, projection_passes=0),
                                 scan.object)
        timings["reconstruct_network_alone_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    refined = refine_from_network(start_object, scan,
                                  network_refine_config(epochs=s.refine_epochs, seed=s.seed),
                                  probe=model_probe(archive.model), device=device)
    timings["refine_s"] = time.perf_counter() - tick
    save_refinement(refined, out / "refined", timings["refine_s"],
                    start="the network's stitched object before the passes over the scan "
                          "(../reconstruction/ holds it after them)")
    tick = time.perf_counter()
    flat = refine_scan(scan, RefineConfig(epochs=s.refine_epochs, seed=s.seed), device=device,
                       verbose=False)
    timings["refine_flat_s"] = time.perf_counter() - tick
    comparison = {
        **({"network_alone": network_alone} if network_alone is not None else {}),
        "network": metrics,
        "network_refined": evaluate(as_reconstruction(refined), scan.object),
        "flat_refined": evaluate(as_reconstruction(flat), scan.object),
    }
    atomic_write_bytes(out / "refined" / "metrics.json",
                       (json.dumps(comparison, indent=2) + "\n").encode())
    truth = result.object_window(scan.object)
    mask = result.covered(0.05).numpy()
    save_side_by_side(out / "amplitude_vs_truth.png",
                      [result.amplitude.numpy(), truth.abs().numpy()],
                      ["reconstructed amplitude", "true amplitude"], [mask, mask], cmap="gray")
    save_side_by_side(out / "phase_vs_truth.png",
                      [_aligned_phase(result.object, truth, mask), truth.angle().numpy()],
                      ["reconstructed phase", "true phase"], [mask, mask], cmap="twilight")
    refined_view = as_reconstruction(refined)
    refined_mask = refined_view.covered(0.05).numpy()
    refined_truth = refined_view.object_window(scan.object)
    save_side_by_side(out / "refined_phase_vs_truth.png",
                      [_aligned_phase(result.object, truth, mask),
                       _aligned_phase(refined.object, refined_truth, refined_mask),
                       refined_truth.angle().numpy()],
                      ["network phase", f"after {s.refine_epochs} epochs of refinement",
                       "true phase"], [mask, refined_mask, refined_mask], cmap="twilight")
    save_training_curve(out / "training_curve.png", fit.history)
    timings["total_s"] = time.perf_counter() - start

    say("[5/5] writing the report")
    report = out / "report.md"
    atomic_write_bytes(report, _report(s, fit.history, metrics, timings, paths,
                                       comparison).encode())
    say(summary(comparison, timings, s.refine_epochs))
    return report


def summary(comparison: dict[str, dict], timings: dict[str, float], refine_epochs: int) -> str:
    """A few lines: SSIM and PSNR against the truth of the network alone, the network followed
    by ``refine_epochs`` epochs of refinement, and that refinement from a flat object, with the
    seconds each took (``comparison`` as :func:`run_demo` writes it to refined/metrics.json)."""
    rows = _comparison_rows(comparison, timings, refine_epochs)
    width = max(len(label) for label, _, _ in rows)
    lines = []
    for label, m, seconds in rows:
        lines.append(f"{label:<{width}}  amplitude SSIM {m['amplitude_ssim']:.3f} "
                     f"(PSNR {m['amplitude_psnr']:.1f} dB), phase SSIM {m['phase_ssim']:.3f} "
                     f"(PSNR {m['phase_psnr']:.1f} dB), {seconds}")
    return "\n".join(lines)


def _comparison_rows(comparison: dict[str, dict], timings: dict[str, float],
                     refine_epochs: int) -> list[tuple[str, dict, str]]:
    def seconds(key: str) -> str:
        value = timings.get(key, float("nan"))
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"

    alone = comparison.get("network_alone")
    rows = [] if alone is None else [
        ("network alone, no projection steps or passes", alone,
         f"{seconds('reconstruct_network_alone_s')} reconstruction")]
    return rows + [
        (_model_label(comparison), comparison["network"],
         f"{seconds('train_s')} training + {seconds('reconstruct_s')} reconstruction"),
        (f"network + {refine_epochs} refinement epochs", comparison["network_refined"],
         f"+ {seconds('refine_s')} refinement"),
        (f"{refine_epochs} refinement epochs from a flat object", comparison["flat_refined"],
         f"{seconds('refine_flat_s')}, no network"),
    ]


def _model_label(comparison: dict[str, dict]) -> str:
    """The row of the model's reconstruction: the network with its projection steps
    (docs/DESIGN.md §11) when the comparison also holds the network alone."""
    return ("network + projection steps and passes (the model's reconstruction)"
            if "network_alone" in comparison else "network alone")


def _refinement_verdict(comparison: dict[str, dict]) -> str:
    """What the numbers say about the network's start (phase SSIM, 0.01 counts as even)."""
    network = comparison["network"]["phase_ssim"]
    refined = comparison["network_refined"]["phase_ssim"]
    flat = comparison["flat_refined"]["phase_ssim"]
    gain = ("raised" if refined > network + 0.01 else
            "lowered" if refined < network - 0.01 else "hardly changed")
    if refined > flat + 0.01:
        start = "the network's object was the better start"
    elif refined < flat - 0.01:
        start = "the flat start did better: the network's object did not help the refinement"
    else:
        start = "the network's object and a flat start ended level"
    return (f"The refinement {gain} the phase SSIM of the network's reconstruction "
            f"({network:.3f} -> {refined:.3f}); at the same number of epochs {start} "
            f"(phase SSIM {refined:.3f} against {flat:.3f} from flat).")


def save_training_curve(path: Path, history: list[dict]) -> Path:
    """Plot the Poisson deviance per pixel of the training and validation data against the
    epoch (log scale), as a PNG."""
    epochs = np.array([h["epoch"] for h in history], np.float64)
    curves = {"training": (epochs, np.array([h.get("train_deviance", np.nan) for h in history],
                                            np.float64))}
    validation = np.array([h.get("val_deviance", np.nan) for h in history], np.float64)
    if np.isfinite(validation).any():
        curves["validation"] = (epochs, validation)
    return save_curves(path, curves, title="poisson deviance per pixel", xlabel="epoch",
                       log_y=True)


def _aligned_phase(obj: torch.Tensor, truth: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    """The reconstruction's phase with the global phase offset to the truth removed (the
    absolute phase is not measurable), for display."""
    weight = torch.from_numpy(mask)
    offset = torch.angle((truth * obj.conj() * weight).sum())
    return torch.angle(obj * torch.exp(1j * offset)).numpy()


def _verdict(value: float) -> str:
    if value >= 0.9:
        return "close to the truth"
    if value >= 0.8:
        return "good"
    if value >= 0.6:
        return "recognisable but blurred"
    return "poor: the model has not converged"


def _report(s: DemoSettings, history: list[dict], metrics: dict, timings: dict,
            paths: dict, comparison: dict[str, dict] | None = None) -> str:
    amp, phase = metrics["amplitude_ssim"], metrics["phase_ssim"]
    lines = [
        "# pinn demo report",
        "",
        f"A {s.object_kind} object ({s.object_size_px} x {s.object_size_px} px, "
        + ("at the reference's feature scale" if s.zoom == 1 else f"features enlarged {s.zoom}x")
        + ") was scanned at "
        f"{s.n_scans} positions ({s.scan}, {s.jitter_px} px jitter) with the "
        f"{s.probe} probe and {s.photons:.0e} photons per pattern (Poisson noise). A PtychoPINN "
        f"model (N = {s.size_px}, gridsize {s.gridsize}, n_filters_scale {s.n_filters_scale}) "
        f"was trained for {plural(len(history), 'epoch')} on the diffraction alone, saved, loaded "
        "back and "
        "run over every position.",
        "",
        "## Result: the network alone" if not s.projection_steps else
        "## Result: the model's reconstruction",
        "",
        *([] if not s.projection_steps else [
            f"The network's object for each group, blurred by "
            f"{ModelConfig(gridsize=s.gridsize).blur_px:g} px (`model.projection_blur_px`), took "
            f"{s.projection_steps} projection steps against the group's own patterns "
            "(`model.projection_steps`: error-reduction updates at inference, which restore "
            "the fine detail the network learns slowest), and the groups' constant phases were "
            f"synchronised in {ModelConfig(gridsize=s.gridsize).sync_rounds} rounds before stitching "
            "(`model.projection_sync_rounds`); then "
            f"{ModelConfig().projection_passes} passes of error reduction over the whole scan "
            "fitted the stitched object to every pattern (`model.projection_passes`). The "
            "network's object alone is in the table below.", ""]),
        "| | SSIM | PSNR (dB) | FRC 1/2-bit (cycles/px) |",
        "|---|---|---|---|",
        f"| amplitude | {amp:.3f} | {metrics['amplitude_psnr']:.2f} | "
        f"{metrics['amplitude_frc_half_bit']:.3f} |",
        f"| phase | {phase:.3f} | {metrics['phase_psnr']:.2f} | "
        f"{metrics['phase_frc_half_bit']:.3f} |",
        "",
        f"Amplitude: {_verdict(amp)}. Phase: {_verdict(phase)}. SSIM uses each true image's own "
        "data range after subpixel registration and phase-ramp alignment, over the well-covered "
        "region.",
        "",
        "![amplitude](amplitude_vs_truth.png)",
        "",
        "![phase](phase_vs_truth.png)",
        "",
    ]
    if comparison is not None:
        lines += [
            "## Network, then refinement",
            "",
            f"The network's object and probe then started {s.refine_epochs} epochs of physics "
            "refinement (`pinn reconstruct --refine`: object and probe fitted to the counts "
            "directly, no network; the object's learning rate "
            f"{network_refine_config().learning_rate:g}); the same number of epochs from a "
            f"flat object (learning rate {RefineConfig().learning_rate:g}, the flat start's "
            "default) is shown for comparison. Scored as above.",
            "",
            "| | amplitude SSIM | phase SSIM | amplitude PSNR (dB) | phase PSNR (dB) | time |",
            "|---|---|---|---|---|---|",
        ]
        for label, m, seconds in _comparison_rows(comparison, timings, s.refine_epochs):
            lines.append(f"| {label} | {m['amplitude_ssim']:.3f} | {m['phase_ssim']:.3f} | "
                         f"{m['amplitude_psnr']:.2f} | {m['phase_psnr']:.2f} | {seconds} |")
        lines += ["", _refinement_verdict(comparison), "",
                  "![refined phase](refined_phase_vs_truth.png)", ""]
    lines += [
        "## Training",
        "",
        "![training curve](training_curve.png)",
        "",
        "| epoch | train loss | Poisson deviance / pixel | val deviance / pixel | lr | s |",
        "|---|---|---|---|---|---|",
    ]
    for h in history:
        lines.append(f"| {int(h['epoch'])} | {h['train_loss']:.6g} | "
                     f"{h.get('train_deviance', float('nan')):.3f} | "
                     f"{h.get('val_deviance', float('nan')):.3f} | {h['learning_rate']:.2g} | "
                     f"{h['seconds']:.1f} |")
    lines += [
        "",
        "The Poisson deviance per pixel is about 1 when the model fits the data down to the "
        "shot noise; the loss itself (the reference's NLL) has no absolute meaning.",
        "",
        "## Time",
        "",
        "| step | seconds |",
        "|---|---|",
    ]
    lines += [f"| {k[:-2]} | {v:.1f} |" for k, v in timings.items()]
    lines += [
        "",
        "## Files",
        "",
        "- `data.npz`: the simulated scan (with `objectGuess`)",
        "- `run/model/`: the model archive (`pinn info run/model`)",
        "- `run/tb/`: TensorBoard logs (`tensorboard --logdir run/tb`)",
        f"- `reconstruction/`: {paths['npz'].name}, {paths['amplitude'].name}, "
        f"{paths['phase'].name}",
        "- `metrics.json`: every metric (the model's reconstruction)",
        "- `refined/`: the refinement from the network's object (reconstruction.npz with the "
        "probe and positions, figures, report.md) and `refined/metrics.json` (every result of "
        "the table)",
        "- `amplitude_vs_truth.png`, `phase_vs_truth.png`, `refined_phase_vs_truth.png`, "
        "`training_curve.png`: the figures",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(asdict(s), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
