"""What each ``pinn`` subcommand does once its arguments are parsed (pinn/cli/parser.py
builds the parser): read the inputs, call the library, print one line about what was written.

The library is imported inside each handler, so that ``pinn --help`` and argument errors
need no torch.
"""

from __future__ import annotations

import argparse
import json
import sys


def _read_scan(args: argparse.Namespace):
    from pinn.data import load_scan

    return load_scan(args.data, values=args.values, zero_frequency=args.zero_frequency,
                     positions=args.positions, crop_px=args.crop_patterns,
                     probe_path=args.probe_file, stream=getattr(args, "stream", False))


def cmd_simulate(args: argparse.Namespace) -> int:
    from pinn.data import simulate, write_npz

    scan = simulate(kind=args.object, n_scans=args.n_scans, size=args.size, photons=args.photons,
                    seed=args.seed, scan=args.scan, probe=args.probe,
                    object_size=args.object_size, zoom=args.zoom)
    write_npz(args.out, scan)
    print(f"wrote {args.out}: {scan.n_scans} patterns of {scan.N} x {scan.N}, object "
          f"{tuple(scan.object.shape)}, {scan.measured_nphotons:.3g} photons per pattern")
    return 0


def training_config(args: argparse.Namespace):
    """The configuration ``pinn train`` runs: --config, then --reference-recipe, then --set,
    then the options."""
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
                       ("projection_sync_rounds", args.projection_sync),
                       ("projection_passes", args.projection_passes)):
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


def cmd_train(args: argparse.Namespace) -> int:
    from pinn.fit import train_scan

    scan = _read_scan(args)
    config = training_config(args)
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


def cmd_reconstruct(args: argparse.Namespace) -> int:
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
                             projection_sync_rounds=args.projection_sync,
                             projection_passes=args.projection_passes)
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
                                 projection_sync_rounds=args.projection_sync,
                             projection_passes=args.projection_passes)
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


def cmd_refine(args: argparse.Namespace) -> int:
    import time

    from pinn.refine.cli import refine_command

    start = time.perf_counter()
    paths, result = refine_command(args, _read_scan(args))
    deviance = result.history[-1]["train_deviance"]
    print(f"wrote {paths['npz']} and its figures and report ({len(result.history)} epochs in "
          f"{time.perf_counter() - start:.1f} s, deviance {deviance:.3f} per pixel, "
          f"{result.probe.shape[0]} probe modes)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
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


def cmd_info(args: argparse.Namespace) -> int:
    from pinn.archive import describe

    print(describe(args.model))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pinn.demo import run_demo

    report = run_demo(args.out, device=args.device, quick=args.quick, verbose=not args.quiet)
    print(f"report written to {report}")
    return 0
