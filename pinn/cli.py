"""The ``pinn`` command: simulate, train, reconstruct, refine, evaluate, info, demo.

This module only parses arguments and calls the library. Errors a user can fix are printed as
one line (``pinn: error: ...``) with exit status 2; ``--debug`` shows the traceback instead.
An interrupted training run exits with status 130 after saving its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from pinn import __version__
from pinn.cli_refine import add_refine_command
from pinn.errors import PinnError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with pinn's one-line usage errors (``pinn: error: ...``, exit status 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"pinn: error: {message} (see {self.prog} --help)\n")


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how to read the scan file")
    group.add_argument("--values", choices=("amplitude", "counts"), default=None,
                       help="the stored diffraction holds amplitudes (sqrt of counts) or photon "
                            "counts (default: amplitude; counts for measured tike files)")
    group.add_argument("--zero-frequency", choices=("center", "corner"), default=None,
                       help="where zero frequency sits in the stored patterns (default: center; "
                            "corner for measured tike files)")
    group.add_argument("--positions", choices=("center", "corner"), default=None,
                       help="whether coordinates mark each window's centre or top-left corner "
                            "(default: center; corner for measured tike files)")
    group.add_argument("--crop-patterns", type=int, default=None, metavar="N",
                       help="keep only the central N x N of every pattern (e.g. 64 to train "
                            "quickly on 128 x 128 data)")
    group.add_argument("--probe-file", type=Path, default=None, metavar="NPZ",
                       help="take the probe from this NPZ instead of the scan file's, with all "
                            "its modes (key probe_modes, probeGuess or probe, e.g. a solver's "
                            "reconstruction)")


def _read_scan(args: argparse.Namespace):
    from pinn.data import load_scan

    return load_scan(args.data, values=args.values, zero_frequency=args.zero_frequency,
                     positions=args.positions, crop_px=args.crop_patterns,
                     probe_path=args.probe_file, stream=getattr(args, "stream", False))


def _cmd_simulate(args: argparse.Namespace) -> int:
    from pinn.data import simulate, write_npz

    scan = simulate(kind=args.object, n_scans=args.n_scans, size=args.size, photons=args.photons,
                    seed=args.seed, scan=args.scan, probe=args.probe,
                    object_size=args.object_size, zoom=args.zoom)
    write_npz(args.out, scan)
    print(f"wrote {args.out}: {scan.n_scans} patterns of {scan.N} x {scan.N}, object "
          f"{tuple(scan.object.shape)}, {scan.measured_nphotons:.3g} photons per pattern")
    return 0


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds in ``"150"``, ``"90s"``, ``"3m"``, ``"1.5h"``, ``"1h30m"``, ``"2m30s"``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use seconds (150) or units h, m, s (3m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return total


def _training_config(args: argparse.Namespace):
    from pinn.config import Config, DataConfig, ModelConfig, TrainingConfig, reference_config
    from pinn.config_files import apply_settings, read_config_file

    base = read_config_file(args.config) if args.config else Config()
    if args.reference_recipe:
        base = reference_config(base)
    base = apply_settings(base, args.set or [])
    model = {**base.model.__dict__}
    training = {**base.training.__dict__}
    data = {**base.data.__dict__}
    for key, value in (("size_px", args.size), ("gridsize", args.gridsize),
                       ("generator", args.generator), ("output", args.output),
                       ("width", args.width), ("n_filters_scale", args.n_filters_scale),
                       ("probe_trainable", args.probe_trainable or None),
                       ("probe_modes", args.probe_modes),
                       ("projection_steps", args.projection_steps),
                       ("projection_blur_px", args.projection_blur),
                       ("projection_sync_rounds", args.projection_sync)):
        if value is not None:
            model[key] = value
    for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size),
                       ("seed", args.seed), ("learning_rate", args.lr),
                       ("validation_fraction", args.validation_fraction),
                       ("compile", args.compile or None), ("max_time_s", args.max_time),
                       ("schedule", args.schedule)):
        if value is not None:
            training[key] = value
    if args.max_time is not None:
        if args.epochs is None:  # the budget decides how long
            training["epochs"] = None
        if args.schedule is None:  # a decay planned over the budget
            training["schedule"] = "cosine"
    if args.amp:
        training["precision"] = args.amp
    if args.nphotons is not None:
        data["nphotons"] = args.nphotons
    return Config(model=ModelConfig(**model), data=DataConfig(**data),
                  training=TrainingConfig(**training))


def _cmd_train(args: argparse.Namespace) -> int:
    from pinn.fit import train_scan

    scan = _read_scan(args)
    config = _training_config(args)
    from dataclasses import replace

    if args.size is None and scan.N != config.model.size_px:
        config = replace(config, model=replace(config.model, size_px=scan.N))
    modes = 1 if scan.probe.dim() == 2 else scan.probe.shape[0]
    if args.probe_modes is None and modes > config.model.probe_modes:
        config = replace(config, model=replace(config.model, probe_modes=modes))
    result = train_scan(scan, config, args.out, resume=args.resume, overwrite=args.overwrite,
                        device=args.device, data_path=args.data, verbose=not args.quiet,
                        force_precision=args.amp_force)
    if result.archive is not None:
        print(f"model saved to {result.archive}")
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from pinn.archive import load_archive
    from pinn.reconstruct import reconstruct, save_reconstruction

    if args.refine is not None:
        return _reconstruct_and_refine(args)
    if args.probe_modes is not None or args.refine_positions:
        from pinn.errors import ConfigError

        raise ConfigError("--probe-modes and --refine-positions belong to the refinement; add "
                          "--refine E (epochs) or drop them")
    archive = load_archive(args.model, device=args.device)
    scan = _read_scan(args)
    try:
        result = reconstruct(archive, scan, batch_size=args.batch_size,
                             crop_px=args.crop_px, weighting=args.weighting,
                             neighbors=args.neighbors, seed=args.grouping_seed,
                             transpose=args.transpose, flip_x=args.flip_x, flip_y=args.flip_y,
                             device=args.device, progress=not args.quiet,
                             projection_steps=args.projection_steps,
                             projection_blur_px=args.projection_blur,
                             projection_sync_rounds=args.projection_sync)
    finally:
        if hasattr(scan, "close"):  # a stream (--stream)
            scan.close()
    paths = save_reconstruction(result, args.out)
    print(f"wrote {paths['npz']}, {paths['amplitude']} and {paths['phase']} "
          f"({result.n_positions} positions, canvas {tuple(result.object.shape)})")
    return 0


def _reconstruct_and_refine(args: argparse.Namespace) -> int:
    from pinn.archive import load_archive
    from pinn.errors import ConfigError
    from pinn.reconstruct import save_reconstruction
    from pinn.refine.cli import positions_note
    from pinn.refine.network import network_refine_config, reconstruct_and_refine
    from pinn.refine.outputs import save_refinement

    if args.refine < 1:
        raise ConfigError(f"--refine is {args.refine}; give the number of refinement epochs "
                          "(1 or more), or drop --refine")
    if args.probe_modes is not None and args.probe_modes < 1:
        raise ConfigError(f"--probe-modes is {args.probe_modes}; use 1 or more modes")
    if args.stream:
        raise ConfigError("--refine needs every pattern in memory; drop --stream")
    config = network_refine_config(epochs=args.refine, probe_modes=args.probe_modes,
                                   refine_positions=args.refine_positions)
    archive = load_archive(args.model, device=args.device)
    scan = _read_scan(args)
    run = reconstruct_and_refine(archive, scan, config=config, out_dir=args.out,
                                 device=args.device, verbose=not args.quiet,
                                 batch_size=args.batch_size, crop_px=args.crop_px,
                                 weighting=args.weighting, neighbors=args.neighbors,
                                 seed=args.grouping_seed, transpose=args.transpose,
                                 flip_x=args.flip_x, flip_y=args.flip_y,
                                 projection_steps=args.projection_steps,
                                 projection_blur_px=args.projection_blur,
                                 projection_sync_rounds=args.projection_sync)
    network = save_reconstruction(run.network, args.out / "network")
    paths = save_refinement(run.refined, args.out, run.refine_s,
                            start=f"the network's reconstruction (network/{network['npz'].name}, "
                                  f"{run.network_s:.1f} s)")
    history = run.refined.history
    note = positions_note(config, run.refined)
    if note:
        print(note, file=sys.stderr)
    print(f"wrote {paths['npz']} and its figures and report: the network ({run.network_s:.1f} s, "
          f"in {network['npz'].parent}), then {len(history)} epochs of refinement "
          f"({run.refine_s:.1f} s, deviance {history[0]['train_deviance']:.3f} -> "
          f"{history[-1]['train_deviance']:.3f} per pixel, {run.refined.probe.shape[0]} probe "
          "modes)")
    return 0


def _cmd_refine(args: argparse.Namespace) -> int:
    import time

    from pinn.refine.cli import refine_command

    start = time.perf_counter()
    paths, result = refine_command(args, _read_scan(args))
    deviance = result.history[-1]["train_deviance"]
    print(f"wrote {paths['npz']} and its figures and report ({len(result.history)} epochs in "
          f"{time.perf_counter() - start:.1f} s, deviance {deviance:.3f} per pixel, "
          f"{result.probe.shape[0]} probe modes)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pinn.evaluate import evaluate_files, poor_match

    metrics = evaluate_files(args.reconstruction, args.reference, register=not args.no_register,
                             phase_ssim_compat=args.phase_ssim_compat)
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.6g}" if isinstance(value, float) else
              f"{key:<{width}}  {value}")
    if args.json:
        from pinn.atomic import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(metrics, indent=2) + "\n").encode())
    warning = poor_match(metrics)
    if warning:  # last, where it is seen
        print(f"pinn: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from pinn.archive import describe

    print(describe(args.model))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pinn.demo import run_demo

    report = run_demo(args.out, device=args.device, quick=args.quick, verbose=not args.quiet)
    print(f"report written to {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pinn", description="PtychoPINN in pure PyTorch: physics-informed neural "
        "reconstruction of ptychographic scans.")
    parser.add_argument("--version", action="version", version=f"pinn {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate a scan with ground truth into an NPZ file",
                       description="Simulate a ptychographic scan (Poisson noise) of a synthetic "
                       "object and write it in the NPZ data contract, with objectGuess.")
    p.add_argument("out", type=Path, metavar="OUT.npz", help="the NPZ file to write")
    p.add_argument("--object", choices=("lines", "grf", "siemens", "blobs"), default="lines",
                   help="the synthetic object (default: lines)")
    p.add_argument("--n-scans", type=int, default=400, metavar="K",
                   help="number of scan positions (default: 400)")
    p.add_argument("--size", type=int, default=64, metavar="N",
                   help="pattern and probe size N in pixels (default: 64)")
    p.add_argument("--photons", type=float, default=1e6, metavar="P",
                   help="expected total photon count per pattern (default: 1e6)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    p.add_argument("--scan", choices=("raster", "spiral", "random"), default="raster",
                   help="scan pattern (default: raster with jitter)")
    p.add_argument("--probe", choices=("default", "gaussian", "ring"), default="default",
                   help="probe (default: the reference's default probe)")
    p.add_argument("--object-size", type=int, default=None, metavar="PX",
                   help="object side in pixels (default: just large enough for the scan)")
    p.add_argument("--zoom", type=int, default=1, metavar="Z",
                   help="make the object's features Z times larger (default: 1)")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="train a model on a scan and save its archive",
                       description="Train PtychoPINN on a scan (unsupervised). Writes the archive "
                       "to RUN/model/, checkpoints to RUN/checkpoints/, TensorBoard logs to "
                       "RUN/tb/<run id>/. An --out that holds a run is refused unless --resume "
                       "or --overwrite is given.")
    p.add_argument("data", type=Path, metavar="DATA.npz", help="the training scan")
    p.add_argument("--out", type=Path, required=True, metavar="RUN", help="output directory")
    p.add_argument("--epochs", type=int, default=None, metavar="E",
                   help="epochs (default: 50; with --max-time: as many as the budget allows)")
    p.add_argument("--max-time", type=parse_duration, default=None, metavar="T",
                   help="training time budget: seconds (150) or with units (3m, 1h30m). "
                        "Training stops cleanly at the budget (or after --epochs, if given and "
                        "first) and saves the model as at a normal end; the learning rate "
                        "decays over the budget (cosine, unless --schedule plateau)")
    p.add_argument("--schedule", choices=("plateau", "cosine"), default=None,
                   help="learning-rate schedule: plateau (reduce when the validation loss "
                        "stalls; the default) or cosine (a decay planned over the run)")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="groups per step and process (default: 16)")
    p.add_argument("--gridsize", type=int, default=None, metavar="G",
                   help="patterns per group = G*G (default: 1)")
    p.add_argument("--size", type=int, default=None, metavar="N",
                   help="patch size N (64, 128 or 256; default: the pattern size)")
    p.add_argument("--generator", choices=("cnn", "unet", "fno"), default=None,
                   help="the network: cnn (the reference's encoder-decoder), unet (residual "
                        "U-Net with skip connections) or fno (Fourier neural operator) "
                        "(default: cnn)")
    p.add_argument("--output", choices=("amp_phase", "real_imag"), default=None,
                   help="the network predicts amplitude and phase or real and imaginary parts "
                        "(default: amp_phase)")
    p.add_argument("--width", type=int, default=None, metavar="W",
                   help="channels of the U-Net's first level / the FNO's layers (default: 32)")
    p.add_argument("--n-filters-scale", type=int, default=None, metavar="S",
                   help="multiplies the CNN's filter counts (default: 1; the reference's is 2)")
    p.add_argument("--lr", type=float, default=None,
                   help="initial learning rate (default: 2e-3; the reference's is 1e-3)")
    p.add_argument("--projection-steps", type=int, default=None, metavar="K",
                   help="error-reduction updates of each group's object against its own "
                        "patterns when the model reconstructs (default: 16; 0: the network's "
                        "output as it is; recorded in the archive)")
    p.add_argument("--projection-blur", type=float, default=None, metavar="PX",
                   help="standard deviation in pixels of the Gaussian blur of each group's "
                        "object before its projection steps, which keeps the network's smooth "
                        "part and drops its fine errors (default: 4 at gridsize 2 and more, 0 "
                        "at gridsize 1; 0: no blur; recorded in the archive)")
    p.add_argument("--projection-sync", type=int, default=None, metavar="K",
                   help="rounds of phase synchronisation of the groups' objects after their "
                        "projection steps, before stitching (default: 32 at gridsize 2 and more, "
                        "0 at gridsize 1; 0: none; recorded in the archive)")
    p.add_argument("--reference-recipe", action="store_true",
                   help="the reference PtychoPINN's CNN width (--n-filters-scale 2), learning "
                        "rate (--lr 1e-3) and pure network output (--projection-steps 0); every "
                        "other default is already its recipe. Applied after --config, before "
                        "--set and the options above")
    p.add_argument("--validation-fraction", type=float, default=None, metavar="F",
                   help="fraction of groups held out for validation (default: 0.05)")
    p.add_argument("--nphotons", type=float, default=None,
                   help="mean photons per pattern (default: measured for counts, 1e9 otherwise)")
    p.add_argument("--probe-trainable", action="store_true", help="refine the probe too")
    p.add_argument("--probe-modes", type=int, default=None, metavar="K",
                   help="incoherent probe modes; modes beyond the probe guess's are added as "
                        "Hermite-like modes of it (default: 1, or as many as the guess has)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (default: 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN (same configuration and data; a larger "
                        "--epochs or --max-time extends a finished run)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that RUN holds (its model and checkpoint)")
    p.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"), default=None,
                   help="mixed precision for the CNN: bf16 (CPU or CUDA, the default when the "
                        "flag is given) or fp16 (CUDA). On a CPU without native bf16 "
                        "(AVX512_BF16 or AMX) bf16 is ~10x slower, so training stays in "
                        "float32 and says so")
    p.add_argument("--amp-force", action="store_true",
                   help="use bf16 even on a CPU without native bf16")
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--device", default="cpu", metavar="D",
                   help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="start from this configuration: a configuration JSON, an archive's "
                        "config.json, an archive (directory or .zip) or a run directory RUN "
                        "(reuses its recipe); --set and the options above override it")
    p.add_argument("--set", action="append", default=None, metavar="SECTION.KEY=VALUE",
                   help="set any configuration field, e.g. --set training.plateau_patience=6 "
                        "(repeatable; docs/CONFIG.md lists every field); the options above "
                        "override it")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_read_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("reconstruct", help="reconstruct a scan with a trained model",
                       description="Run a trained model over every position of a scan and "
                       "stitch the object. Writes DIR/reconstruction.npz, DIR/amplitude.png "
                       "and DIR/phase.png. With --refine E the network's object then starts E "
                       "epochs of physics refinement (as pinn refine): DIR gets the refined "
                       "outputs and report, DIR/network/ the network's own reconstruction.")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="archive directory or .zip, or a training run directory RUN "
                        "(reads RUN/model)")
    p.add_argument("data", type=Path, metavar="DATA.npz", help="the scan to reconstruct")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--batch-size", type=int, default=64, metavar="B",
                   help="groups per forward pass (default: 64)")
    p.add_argument("--crop-px", type=int, default=None, metavar="M",
                   help="central window of each object patch that is stitched (default: the "
                        "whole patch with probe weighting, 5N/16 with uniform weighting)")
    p.add_argument("--weighting", choices=("probe", "uniform"), default="probe",
                   help="weight each object pixel by the probe's illumination (default) or "
                        "average the cropped windows equally (the reference's stitching)")
    p.add_argument("--neighbors", type=int, default=None, metavar="K",
                   help="candidate neighbours when grouping positions at gridsize > 1 "
                        "(default: the archive's, i.e. the training's grouping)")
    p.add_argument("--grouping-seed", type=int, default=None, metavar="S",
                   help="seed of the grouping draw at gridsize > 1 (default: the archive's)")
    p.add_argument("--projection-steps", type=int, default=None, metavar="K",
                   help="error-reduction updates of each group's object against its own "
                        "patterns before stitching (default: the archive's "
                        "model.projection_steps; 0: the network's output as it is)")
    p.add_argument("--projection-blur", type=float, default=None, metavar="PX",
                   help="standard deviation in pixels of the Gaussian blur of each group's "
                        "object before its projection steps (default: the archive's: "
                        "model.projection_blur_px if set at training, else 4 at gridsize 2 and "
                        "more and 0 at gridsize 1; 0: no blur)")
    p.add_argument("--projection-sync", type=int, default=None, metavar="K",
                   help="rounds of phase synchronisation of the groups' objects after their "
                        "projection steps, before stitching (default: the archive's: "
                        "model.projection_sync_rounds if set at training, else 32 at gridsize 2 "
                        "and more and 0 at gridsize 1; 0: none)")
    p.add_argument("--transpose", action="store_true", help="swap the axes of each patch")
    p.add_argument("--flip-x", action="store_true", help="negate the x coordinates")
    p.add_argument("--flip-y", action="store_true", help="negate the y coordinates")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--stream", action="store_true",
                   help="read the diffraction patterns from the file batch by batch instead of "
                        "loading them all, for scans larger than memory (NPZ-contract files in "
                        "the (M, N, N) layout; not with --crop-patterns; a compressed file is "
                        "first decompressed to a temporary file). Costs one extra pass over the "
                        "file; the result is identical")
    refine = p.add_argument_group("refinement after the network (pinn refine's physics)")
    refine.add_argument("--refine", type=int, default=None, metavar="E",
                        help="then refine object and probe for E epochs on the counts, starting "
                             "from the network's object and the model's probe; DIR gets pinn "
                             "refine's outputs and DIR/network/ the network's reconstruction")
    refine.add_argument("--probe-modes", type=int, default=None, metavar="K",
                        help="with --refine: incoherent probe modes (default: as many as the "
                             "model's probe has)")
    refine.add_argument("--refine-positions", action="store_true",
                        help="with --refine: also correct every scan position")
    _add_read_options(p)
    p.set_defaults(func=_cmd_reconstruct)

    add_refine_command(sub, _cmd_refine, _add_read_options)

    p = sub.add_parser("evaluate", help="compare a reconstruction with a ground truth",
                       description="Register the reconstruction to the ground truth (objectGuess "
                       "of the reference NPZ) and print SSIM, PSNR, MAE and FRC of amplitude and "
                       "phase over the well-covered region. Warns in one line when the two "
                       "hardly resemble each other (another scan's truth, or an untrained "
                       "model).")
    p.add_argument("reconstruction", type=Path, metavar="RECON.npz",
                   help="reconstruction.npz written by `pinn reconstruct`")
    p.add_argument("--reference", type=Path, required=True, metavar="GT.npz",
                   help="NPZ with objectGuess (e.g. the simulated scan)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                   help="also write the metrics as JSON")
    p.add_argument("--no-register", action="store_true", help="skip subpixel registration")
    p.add_argument("--phase-ssim-compat", action="store_true",
                   help="also report the reference implementation's phase SSIM "
                        "((phase+pi)/2pi, data range 1; not a meaningful headline figure)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("info", help="show what a model archive holds",
                       description="Check a model archive (schema version, weights checksum, "
                       "configuration) and print what it holds: patch size, gridsize, "
                       "parameters, intensity scale, probe, network options and how it was "
                       "trained (data file hash, epochs, final losses, versions).")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="archive directory or .zip, or a training run directory RUN "
                        "(reads RUN/model)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="simulate, train, reconstruct, evaluate and report",
                       description="The end-to-end demo on built-in simulated data: writes "
                       "DIR/report.md with figures and metrics (a few minutes on a laptop CPU).")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true",
                   help="a much shorter run (seconds) that checks the pipeline, not quality")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting for each other turn any other load on the machine
    # into a 10-20x slowdown of every convolution (2 cores, one other busy process: 4.2 s
    # against 0.17 s per training step). Only effective before torch is imported, which
    # pinn's command does lazily; an explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("pinn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into one line
        if args.debug:
            raise
        from pinn.engine import TrainingInterrupted

        if isinstance(exc, TrainingInterrupted):
            print(f"pinn: {exc}; run the same command with --resume to continue",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(exc, PinnError):
            message = " ".join(str(exc).split())  # one line, whatever a message embeds
        elif isinstance(exc, OSError):
            message = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        else:
            raise
        print(f"pinn: error: {message}", file=sys.stderr)
        from pinn.engine.distributed import CollectiveFailure

        if isinstance(exc, CollectiveFailure):  # torch's threads wait on a dead connection:
            sys.stdout.flush()  # the interpreter's clean-up could abort in them (a second,
            sys.stderr.flush()  # misleading line and status 134), so end here
            os._exit(EXIT_USAGE)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
