"""Training on a scan: data -> groups -> dataset -> model -> engine -> archive.

:func:`train_scan` is what ``pinn train`` runs. It groups the scan, normalises it, holds out the
last groups for validation (the reference holds out the last 5 % of its arrays), seeds and builds
the model, trains it with :func:`pinn.engine.train`, and writes the archive with its provenance.

Output layout under ``out_dir`` (:func:`run_files`): ``model/`` (the archive),
``checkpoints/`` (for ``--resume``) and ``tb/<run id>/`` (TensorBoard, one directory per run).
A directory that already holds a run is not trained into again unless the call resumes it or
asks to overwrite it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pinn.archive import save_archive
from pinn.config import Config
from pinn.data import GroupDataset, ScanData, group_positions
from pinn.data.dataset import Subset
from pinn.engine import TrainResult, checkpoint_file, seed_everything, train
from pinn.errors import ConfigError, DataError
from pinn.model import PtychoLoss, PtychoPINN, build_model
from pinn.reconstruct import canvas_geometry, reconstruct

@dataclass(frozen=True)
class RunFiles:
    """Where a run directory keeps its parts."""

    model: Path  # the archive
    checkpoints: Path  # the checkpoint directory
    checkpoint: Path  # the last checkpoint in it
    tensorboard: Path  # one subdirectory per run


def run_files(out_dir: str | os.PathLike) -> RunFiles:
    """The layout of the run directory ``out_dir``."""
    out = Path(out_dir)
    return RunFiles(model=out / "model", checkpoints=out / "checkpoints",
                    checkpoint=checkpoint_file(out / "checkpoints"), tensorboard=out / "tb")


def check_run_directory(out_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into ``out_dir`` when that would replace a run nobody asked to replace.

    Raises:
        ConfigError: ``out_dir`` holds a finished or interrupted run and neither ``resume``
            nor ``overwrite`` is given; both are given.
    """
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: resume continues the run in "
                          f"{out_dir}, overwrite replaces it; choose one")
    files = run_files(out_dir)
    if resume or overwrite:
        return
    if (files.model / "config.json").is_file():
        found = f"a trained model ({files.model})"
    elif files.checkpoint.is_file():
        found = f"an unfinished run ({files.checkpoint})"
    else:
        return
    raise ConfigError(f"{out_dir} already holds {found}; pass --resume to continue it, "
                      "--overwrite to replace it, or choose another --out")


def _clear_previous_run(files: RunFiles) -> None:
    """Remove the model and checkpoint of the run that ``overwrite`` replaces (TensorBoard
    logs stay: they are kept per run)."""
    files.checkpoint.unlink(missing_ok=True)
    if (files.model / "config.json").is_file():
        shutil.rmtree(files.model)


@dataclass
class FitResult:
    """The trained ``model`` (on the CPU, eval mode), the per-epoch ``history``, the
    ``archive`` path (None when no output directory was given), the dataset's
    ``intensity_scale`` and ``nphotons``, and the engine's full ``training`` result (why it
    stopped, the epoch whose weights the model holds, changes of plan)."""

    model: PtychoPINN
    history: list[dict[str, float]]
    archive: Path | None
    intensity_scale: float
    nphotons: float
    training: TrainResult | None = None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_sha256(scan: ScanData) -> str:
    """Hex sha256 of a scan's diffraction and positions (identifies in-memory data)."""
    digest = hashlib.sha256()
    digest.update(scan.diffraction.numpy().tobytes())
    digest.update(scan.positions.numpy().tobytes())
    return digest.hexdigest()


def split_validation(n_groups: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of training and validation groups: the last ``fraction`` of them validate."""
    n_val = int(n_groups * fraction)
    if n_val >= n_groups:
        n_val = n_groups - 1
    return torch.arange(n_groups - n_val), torch.arange(n_groups - n_val, n_groups)


def train_scan(
    scan: ScanData,
    config: Config,
    out_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    data_path: str | os.PathLike | None = None,
    verbose: bool = True,
    force_precision: bool = False,
) -> FitResult:
    """Train a PtychoPINN model on one scan (unsupervised: only diffraction and positions).

    Args:
        scan: the training scan; its pattern size must equal ``config.model.size_px``.
        config: model, data and training configuration.
        out_dir: where the archive, checkpoints and TensorBoard logs go (None: nothing written).
        resume: continue the run in ``out_dir`` (the same configuration and data; only
            ``training.epochs`` and ``training.max_time_s`` may change, to extend it).
        overwrite: replace the run that ``out_dir`` holds (without it, or ``resume``, a
            directory holding a run is refused).
        device: "cpu", "cuda", "cuda:N" or "auto".
        data_path: the file the scan came from, hashed into the provenance.
        verbose: print progress.
        force_precision: bf16 even on a CPU that emulates it (see :mod:`pinn.engine.precision`).

    Returns:
        A :class:`FitResult`.

    Raises:
        DataError: when the scan does not fit the model configuration, or its positions span a
            canvas larger than memory.
        ConfigError: ``data.neighbors`` too small for the gridsize; ``out_dir`` holds a run
            and neither ``resume`` nor ``overwrite`` is given.
        pinn.engine.TrainingInterrupted, pinn.errors.TrainingError: see :func:`pinn.engine.train`.
    """
    model_cfg, data_cfg, train_cfg = config.model, config.data, config.training
    if out_dir is not None:
        check_run_directory(out_dir, resume=resume, overwrite=overwrite)
    if scan.N != model_cfg.size_px:
        raise DataError(f"the scan's patterns are {scan.N} x {scan.N} but the model is "
                        f"configured for N = {model_cfg.size_px}; set the model size to "
                        f"{scan.N} or crop the patterns")
    if model_cfg.channels > 1 and data_cfg.neighbors < model_cfg.channels - 1:
        raise ConfigError(f"data.neighbors is {data_cfg.neighbors}, too few for gridsize "
                          f"{model_cfg.gridsize}: each group draws {model_cfg.channels - 1} "
                          f"neighbours besides its seed; set data.neighbors >= "
                          f"{model_cfg.channels - 1} (pinn train: in a --config file)")
    groups = group_positions(scan.positions, model_cfg.gridsize, neighbors=data_cfg.neighbors,
                             seed=data_cfg.grouping_seed)
    canvas_geometry(groups.centroids, model_cfg.size_px)  # refuse now what cannot be stitched
    dataset = GroupDataset(scan, groups, nphotons=data_cfg.nphotons)
    nphotons = dataset.nphotons
    train_idx, val_idx = split_validation(len(dataset), train_cfg.validation_fraction)
    train_set, val_set = Subset(dataset, train_idx), Subset(dataset, val_idx)

    seed_everything(train_cfg.seed, train_cfg.deterministic)
    model = build_model(model_cfg, probe=scan.probe, intensity_scale=dataset.intensity_scale)

    files = run_files(out_dir) if out_dir is not None else None
    data_hash = file_sha256(data_path) if data_path is not None else scan_sha256(scan)
    # The engine compares the training settings itself (the plan may change on resume).
    run_info: dict[str, Any] = {"model": config.to_dict()["model"],
                                "data": config.to_dict()["data"], "data_sha256": data_hash}
    preview_groups = _preview_groups(groups)

    def preview(m: PtychoPINN) -> dict[str, torch.Tensor]:
        result = reconstruct(m, scan, groups=preview_groups, progress=False,
                             device=next(m.parameters()).device)
        return {"preview/amplitude": result.amplitude, "preview/phase": result.phase}

    if files is not None and overwrite and _is_main_process():
        _clear_previous_run(files)
    result = train(
        model, PtychoLoss(train_cfg.nll_weight, train_cfg.mae_weight), train_set, val_set,
        train_cfg,
        checkpoint_dir=files.checkpoints if files else None,
        log_dir=files.tensorboard if files else None,
        resume=resume, device=device, preview=preview, items_per_sample=model_cfg.channels,
        run_info=run_info, verbose=verbose, console_metrics=("deviance",),
        force_precision=force_precision)

    model = model.to("cpu").eval()
    archive = None
    if files is not None and _is_main_process():
        provenance = {
            "data_sha256": data_hash,
            "data_file": str(data_path) if data_path is not None else None,
            **_training_provenance(result),
            "nphotons": nphotons,
            "n_positions": scan.n_scans,
            "n_groups": len(groups),
        }
        archive = save_archive(model, files.model, config=config, provenance=provenance)
    return FitResult(model=model, history=result.history, archive=archive,
                     intensity_scale=dataset.intensity_scale, nphotons=nphotons,
                     training=result)


def _training_provenance(result: TrainResult) -> dict[str, Any]:
    """What the archive records of the training: epochs, why it stopped, which epoch's
    weights it holds and their losses, changes of plan, time."""
    kept = result.restored_epoch or len(result.history)
    final = result.history[kept - 1] if result.history else {}
    return {
        "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "stopped_early": result.stopped_early,
        "weights_from_epoch": kept if result.history else None,
        "final_train_loss": final.get("train_loss"),
        "final_val_loss": final.get("val_loss"),
        "final_train_deviance": final.get("train_deviance"),
        "plan_changes": result.changes,
        "training_seconds": result.elapsed_s,
    }


def _is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun job."""
    return int(os.environ.get("RANK", "0")) == 0


def _preview_groups(groups):
    """Up to 32 groups nearest the scan's centre, for the TensorBoard preview."""
    centre = groups.centroids.mean(dim=0)
    nearest = (groups.centroids - centre).norm(dim=1).argsort()[:32]
    return type(groups)(indices=groups.indices[nearest], offsets=groups.offsets[nearest],
                        centroids=groups.centroids[nearest])
