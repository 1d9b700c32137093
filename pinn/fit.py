"""Training on a scan: data -> groups -> dataset -> model -> engine -> archive.

:func:`train_scan` is what ``pinn train`` runs. It groups the scan, normalises it, holds out the
last groups for validation (the reference holds out the last 5 % of its arrays), seeds and builds
the model, trains it with :func:`pinn.engine.train`, and writes the archive with its provenance.

Output layout under ``out_dir``: ``model/`` (the archive), ``checkpoints/`` (for ``--resume``)
and ``tb/`` (TensorBoard).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pinn.archive import save_archive
from pinn.config import Config
from pinn.data import GroupDataset, ScanData, group_positions
from pinn.engine import seed_everything, train
from pinn.errors import ConfigError, DataError
from pinn.model import PtychoLoss, PtychoPINN, build_model
from pinn.reconstruct import canvas_geometry, reconstruct

@dataclass
class FitResult:
    """The trained ``model`` (on the CPU, eval mode), the per-epoch ``history``, the
    ``archive`` path (None when no output directory was given) and the dataset's
    ``intensity_scale`` and ``nphotons``."""

    model: PtychoPINN
    history: list[dict[str, float]]
    archive: Path | None
    intensity_scale: float
    nphotons: float


class _Subset:
    """A view of some items of a dataset that keeps its fast ``get_batch``."""

    def __init__(self, dataset: GroupDataset, indices: torch.Tensor) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.dataset.get_batch(self.indices[indices])


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
    device: str | torch.device = "cpu",
    data_path: str | os.PathLike | None = None,
    verbose: bool = True,
) -> FitResult:
    """Train a PtychoPINN model on one scan (unsupervised: only diffraction and positions).

    Args:
        scan: the training scan; its pattern size must equal ``config.model.size_px``.
        config: model, data and training configuration.
        out_dir: where the archive, checkpoints and TensorBoard logs go (None: nothing written).
        resume: continue from ``out_dir/checkpoints`` (the same configuration and data).
        device: "cpu", "cuda", "cuda:N" or "auto".
        data_path: the file the scan came from, hashed into the provenance.
        verbose: print progress.

    Returns:
        A :class:`FitResult`.

    Raises:
        DataError: when the scan does not fit the model configuration, or its positions span a
            canvas larger than memory.
        ConfigError: ``data.neighbors`` too small for the gridsize.
        pinn.engine.TrainingInterrupted, pinn.errors.TrainingError: see :func:`pinn.engine.train`.
    """
    model_cfg, data_cfg, train_cfg = config.model, config.data, config.training
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
    train_set, val_set = _Subset(dataset, train_idx), _Subset(dataset, val_idx)

    seed_everything(train_cfg.seed, train_cfg.deterministic)
    model = build_model(model_cfg, probe=scan.probe, intensity_scale=dataset.intensity_scale)

    out = Path(out_dir) if out_dir is not None else None
    data_hash = file_sha256(data_path) if data_path is not None else scan_sha256(scan)
    run_info: dict[str, Any] = {"config": config.to_dict(), "data_sha256": data_hash}
    preview_groups = _preview_groups(groups)

    def preview(m: PtychoPINN) -> dict[str, torch.Tensor]:
        result = reconstruct(m, scan, groups=preview_groups, progress=False,
                             device=next(m.parameters()).device)
        return {"preview/amplitude": result.amplitude, "preview/phase": result.phase}

    result = train(
        model, PtychoLoss(train_cfg.nll_weight, train_cfg.mae_weight), train_set, val_set,
        train_cfg,
        checkpoint_dir=out / "checkpoints" if out else None,
        log_dir=out / "tb" if out else None,
        resume=resume, device=device, preview=preview, items_per_sample=model_cfg.channels,
        run_info=run_info, verbose=verbose)

    model = model.to("cpu").eval()
    archive = None
    if out is not None and _is_main_process():
        final = result.history[-1] if result.history else {}
        provenance = {
            "data_sha256": data_hash,
            "data_file": str(data_path) if data_path is not None else None,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "final_train_loss": final.get("train_loss"),
            "final_val_loss": final.get("val_loss"),
            "final_train_deviance": final.get("train_deviance"),
            "nphotons": nphotons,
            "n_positions": scan.n_scans,
            "n_groups": len(groups),
        }
        archive = save_archive(model, out / "model", config=config, provenance=provenance)
    return FitResult(model=model, history=result.history, archive=archive,
                     intensity_scale=dataset.intensity_scale, nphotons=nphotons)


def _is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun job."""
    return int(os.environ.get("RANK", "0")) == 0


def _preview_groups(groups):
    """Up to 32 groups nearest the scan's centre, for the TensorBoard preview."""
    centre = groups.centroids.mean(dim=0)
    nearest = (groups.centroids - centre).norm(dim=1).argsort()[:32]
    return type(groups)(indices=groups.indices[nearest], offsets=groups.offsets[nearest],
                        centroids=groups.centroids[nearest])
