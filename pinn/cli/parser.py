"""The ``pinn`` command's argument parser: every subcommand's options and help texts
(``pinn refine``'s in pinn/cli/refine_options.py); each subcommand runs its handler in
pinn/cli/commands.py.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pinn import __version__
from pinn.cli import commands
from pinn.cli.refine_options import add_refine_command
from pinn.config import PROJECTION_BLUR_PX, PROJECTION_SYNC_ROUNDS, ModelConfig

EXIT_USAGE = 2


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
                            "reconstruction or the reconstruction.npz of pinn refine "
                            "--probe-modes K)")


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


#: The model's inference physics (docs/DESIGN.md §11), for pinn train (recorded in the archive)
#: and pinn reconstruct (overriding the archive's): flag, type, metavar, what it does, its
#: default at training, the archive's field (``{}``: the default at training), and what 0
#: means.
_GRIDSIZE_DEFAULT = "{} at gridsize 2 and more, 0 at gridsize 1"
_PROJECTION_OPTIONS = (
    ("--projection-steps", int, "K", "error-reduction updates of each group's object against "
     "its own patterns before stitching", str(ModelConfig().projection_steps),
     "model.projection_steps", "0: the network's output as it is"),
    ("--projection-blur", float, "PX", "standard deviation in pixels of the Gaussian blur of "
     "each group's object before its projection steps, which keeps the network's smooth part "
     "and drops its fine errors", _GRIDSIZE_DEFAULT.format(f"{PROJECTION_BLUR_PX:g}"),
     "model.projection_blur_px if set at training, else {}", "0: no blur"),
    ("--projection-sync", int, "K", "rounds of phase synchronisation of the groups' objects "
     "after their projection steps, before stitching",
     _GRIDSIZE_DEFAULT.format(PROJECTION_SYNC_ROUNDS),
     "model.projection_sync_rounds if set at training, else {}", "0: none"),
    ("--projection-passes", int, "K", "passes of error reduction over the whole scan after "
     "stitching, against every pattern", str(ModelConfig().projection_passes),
     "model.projection_passes; none with --transpose", "0: the stitched object as it is"),
)


def _add_projection_options(parser: argparse.ArgumentParser, training: bool) -> None:
    """The --projection-* options of pinn train (``training``) or pinn reconstruct."""
    for flag, kind, metavar, what, trained, field, off in _PROJECTION_OPTIONS:
        default = (f"{trained}; {off}; recorded in the archive" if training
                   else f"the archive's {field.format(trained)}; {off}")
        parser.add_argument(flag, type=kind, default=None, metavar=metavar,
                            help=f"{what} (default: {default})")


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
    p.set_defaults(func=commands.cmd_simulate)

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
    _add_projection_options(p, training=True)
    p.add_argument("--reference-recipe", action="store_true",
                   help="the reference PtychoPINN's CNN width (--n-filters-scale 2), learning "
                        "rate (--lr 1e-3) and pure network output (--projection-steps 0, "
                        "--projection-passes 0); every "
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
    p.set_defaults(func=commands.cmd_train)

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
    _add_projection_options(p, training=False)
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
    p.set_defaults(func=commands.cmd_reconstruct)

    add_refine_command(sub, commands.cmd_refine, _add_read_options)

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
    p.set_defaults(func=commands.cmd_evaluate)

    p = sub.add_parser("info", help="show what a model archive holds",
                       description="Check a model archive (schema version, weights checksum, "
                       "configuration) and print what it holds: patch size, gridsize, "
                       "parameters, intensity scale, probe, network options and how it was "
                       "trained (data file hash, epochs, final losses, versions).")
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="archive directory or .zip, or a training run directory RUN "
                        "(reads RUN/model)")
    p.set_defaults(func=commands.cmd_info)

    p = sub.add_parser("demo", help="simulate, train, reconstruct, evaluate and report",
                       description="The end-to-end demo on built-in simulated data: writes "
                       "DIR/report.md with figures and metrics (a few minutes on a laptop CPU).")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--device", default="cpu", metavar="D", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true",
                   help="a much shorter run (seconds) that checks the pipeline, not quality")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=commands.cmd_demo)
    return parser
