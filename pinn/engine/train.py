"""The training loop: one function, read top to bottom.

Set-up in order (runtime and DDP, seed, model placement, compile, optimiser, resume), then the
loop (data order, autocast, backward, non-finite guard, clip, step, log, checkpoint). The engine
knows nothing about ptychography: it trains any module with a ``loss_fn(model, batch)``.

Reproducibility: the data order of every epoch comes from ``(seed, epoch)`` alone, and a
checkpoint stores the exact position inside the epoch, so a run that is killed and resumed
ends with the same weights, bit for bit on CPU, as one that never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pinn.atomic import remove_stale_temporaries
from pinn.config import TrainingConfig
from pinn.engine import checkpoint as ckpt
from pinn.engine import hooks
from pinn.engine.batching import collate, shard, to_device
from pinn.engine.distributed import (
    Runtime,
    agree,
    collective_failure,
    reduce_sums,
    setup,
    teardown,
)
from pinn.engine.optim import adam_steps_taken, keras_adam_eps
from pinn.engine.progress import ConsoleProgress, TensorBoard
from pinn.engine.schedule import EarlyStopping, Plateau, cosine_lr
from pinn.engine.seed import epoch_generator, seed_everything
from pinn.engine.signals import install_stop_handlers
from pinn.errors import ConfigError, PinnError, TrainingError

#: ``loss_fn(model, batch) -> (loss, metrics)``: a scalar loss (mean over the batch's items)
#: and scalar metrics averaged the same way.
LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]

CHECKPOINT_NAME = "last.safetensors"


class TrainingInterrupted(PinnError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; resume to continue."""


@dataclass
class TrainResult:
    """``history``: one dict per finished epoch; ``stopped_early``: early stopping fired."""

    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


def train(
    model: nn.Module,
    loss_fn: LossFn,
    train_set: Any,
    val_set: Any | None,
    config: TrainingConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = "cpu",
    preview: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None,
    items_per_sample: int = 1,
    run_info: dict[str, Any] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train ``model`` in place.

    Args:
        model: the module to train. Seed (:func:`seed_everything`) before building it so that
            its initial weights are reproducible.
        loss_fn: ``(model, batch) -> (loss, metrics)``.
        train_set, val_set: datasets; ``get_batch(indices)`` is used when present, else items
            (dicts of tensors) are stacked. ``val_set`` may be None or empty.
        config: the training configuration.
        checkpoint_dir: where ``last.safetensors`` is written every epoch and on SIGINT/SIGTERM.
        log_dir: TensorBoard directory (None: no TensorBoard).
        resume: continue from ``checkpoint_dir/last.safetensors`` when it exists.
        device: "cpu", "cuda", "cuda:N" or "auto" (under DDP on CUDA: ``cuda:LOCAL_RANK``).
        preview: returns ``(H, W)`` images of the current model for TensorBoard.
        items_per_sample: patterns per dataset item (for patterns/s).
        run_info: JSON-able facts that must match when resuming (e.g. the configuration).
        verbose: print the progress line (main process only).

    Returns:
        The per-epoch history.

    Raises:
        TrainingInterrupted: after SIGINT/SIGTERM, once the checkpoint is written.
        TrainingError: after ``config.max_nonfinite_steps`` non-finite steps in a row; under
            DDP, when another process stops answering for ``PINN_DDP_TIMEOUT_S`` seconds.
        ConfigError: for fp16 on CPU, an incompatible checkpoint or a ``run_info`` that is not
            JSON-able.
    """
    # --- set-up -------------------------------------------------------------------------------
    run_info_json = _canonical_json(run_info)
    runtime = setup(device)
    seed_everything(config.seed, config.deterministic)
    if config.precision == "fp16" and runtime.device.type != "cuda":
        raise ConfigError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    checkpoint_path = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    if checkpoint_dir is not None and runtime.is_main:
        remove_stale_temporaries(checkpoint_dir)

    model.to(runtime.device)
    wrapped: nn.Module = model
    if runtime.distributed:
        wrapped = DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
    if config.compile:
        wrapped = torch.compile(wrapped)
    # Validation bypasses DDP: its forward can broadcast buffers, a collective that a rank
    # without validation items would never join. (Compiling the module again reuses the code.)
    evaluator = torch.compile(model) if config.compile else model
    optimizer = torch.optim.Adam(hooks.optimizer_groups(model), lr=config.learning_rate,
                                 eps=keras_adam_eps(1))
    plateau = Plateau(lr=config.learning_rate, factor=config.plateau_factor,
                      patience=config.plateau_patience, min_lr=config.min_learning_rate)
    stopper = EarlyStopping(patience=config.early_stopping_patience)
    scaler = torch.amp.GradScaler("cuda", enabled=config.precision == "fp16")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)

    n_train = len(train_set)
    world_batch = config.batch_size * runtime.world_size
    steps = math.ceil(n_train / world_batch)  # micro-batches per epoch
    if n_train < runtime.world_size:
        raise ConfigError(f"only {n_train} training groups for {runtime.world_size} processes")
    has_val = val_set is not None and len(val_set) > 0
    batching = {"global_batch": world_batch, "grad_accumulation": config.grad_accumulation}

    loop: dict[str, Any] = {"epoch": 0, "step": 0, "sums": {}, "items": 0.0, "nonfinite": 0,
                            "global_step": 0, "history": [], "stopped_early": False}
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        tensors, meta = ckpt.load_checkpoint(checkpoint_path)
        state = meta["state"]
        if run_info is not None and _canonical_json(state.get("run_info")) != run_info_json:
            raise ConfigError(f"checkpoint {checkpoint_path} was written by a run with a "
                              "different configuration or data; start a new output directory "
                              "or drop --resume")
        # A mid-epoch position counts global micro-batches and accumulation windows: it means
        # something else with another batch size, number of processes or accumulation.
        saved_batching = state.get("batching", batching)
        if state["loop"]["step"] and saved_batching != batching:
            raise ConfigError(
                f"checkpoint {checkpoint_path} stopped mid-epoch with {saved_batching}; this "
                f"run has {batching}. Resume with the same batch size, number of processes and "
                "gradient accumulation")
        extra = ckpt.restore(tensors, meta, model, optimizer)
        loop.update(state["loop"])
        plateau = Plateau(**state["plateau"])
        stopper = EarlyStopping(**state["early_stopping"])
        if "scaler" in state and config.precision == "fp16":
            scaler.load_state_dict(state["scaler"])
        if "torch_rng" in extra:
            torch.set_rng_state(extra["torch_rng"])
        if not runtime.is_main:  # running sums live on the main process only
            loop["sums"], loop["items"] = {}, 0.0
    hooks.set_learning_rate(optimizer, plateau.lr)

    progress = ConsoleProgress(config.epochs, enabled=verbose and runtime.is_main)
    board = TensorBoard(Path(log_dir) if log_dir is not None and runtime.is_main else None)

    def save(loop_state: dict[str, Any]) -> None:
        if checkpoint_path is None or not runtime.is_main:
            return
        state = {"loop": loop_state, "run_info": json.loads(run_info_json),
                 "batching": batching, "plateau": plateau.state_dict(),
                 "early_stopping": stopper.state_dict()}
        if config.precision == "fp16":
            state["scaler"] = scaler.state_dict()
        ckpt.save_checkpoint(checkpoint_path, model, optimizer, state,
                             extra_tensors={"torch_rng": torch.get_rng_state()})

    stop_requested = threading.Event()
    restore_signals = install_stop_handlers(stop_requested)
    try:
        # --- the loop -------------------------------------------------------------------------
        for epoch in range(loop["epoch"], config.epochs):
            if loop["stopped_early"]:
                break
            order = torch.randperm(n_train, generator=epoch_generator(config.seed, epoch))
            hooks.on_epoch_start(model, epoch)
            wrapped.train()
            epoch_start = time.perf_counter()
            items_done = 0
            optimizer.zero_grad(set_to_none=True)
            window_bad = False
            for step in range(loop["step"], steps):
                window_start = step - step % config.grad_accumulation
                window_end = min(window_start + config.grad_accumulation, steps)
                window_items = min(window_end * world_batch, n_train) - window_start * world_batch
                batch_idx = order[step * world_batch:(step + 1) * world_batch]
                local_idx = shard(batch_idx, runtime)
                batch = to_device(collate(train_set, local_idx), runtime.device)
                # Weight so that the DDP-averaged gradient is the mean over the whole window.
                weight = len(local_idx) * runtime.world_size / window_items
                last_in_window = step + 1 == window_end
                sync = last_in_window or not runtime.distributed
                context = wrapped.no_sync() if not sync else contextlib.nullcontext()
                with context:
                    with torch.autocast(runtime.device.type, dtype=autocast_dtype,
                                        enabled=autocast_dtype is not None):
                        loss, metrics = loss_fn(wrapped, batch)
                    # A rank with an empty share of a short last batch (its loss is NaN or
                    # not even differentiable) still joins DDP's gradient all-reduce, adding 0.
                    n_local = len(local_idx)
                    finite = agree(n_local == 0 or bool(torch.isfinite(loss)), runtime)
                    if finite:
                        objective = loss * weight if n_local else _zero_objective(model)
                        scaler.scale(objective).backward()
                    else:
                        window_bad = True
                if finite and n_local:
                    for name, value in {"loss": loss, **metrics}.items():
                        loop["sums"][name] = (loop["sums"].get(name, 0.0)
                                              + float(value.detach()) * n_local)
                    loop["items"] += n_local
                items_done += len(batch_idx)
                if not last_in_window:
                    continue

                # optimiser step at the end of each accumulation window
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), config.grad_clip_norm or math.inf)
                if window_bad or not torch.isfinite(grad_norm):
                    optimizer.zero_grad(set_to_none=True)
                    if scaler.is_enabled():
                        scaler.update()
                    loop["nonfinite"] += 1
                    progress.message(f"warning: non-finite loss or gradient at epoch {epoch + 1} "
                                     f"step {step + 1}; step skipped "
                                     f"({loop['nonfinite']} in a row)")
                    if loop["nonfinite"] >= config.max_nonfinite_steps:
                        raise TrainingError(
                            f"{loop['nonfinite']} non-finite losses or gradients in a row; "
                            "training stopped. Lower the learning rate, check the data for "
                            "zeros/NaN, or use precision 'off'")
                else:
                    eps = keras_adam_eps(adam_steps_taken(optimizer) + 1)
                    for group in optimizer.param_groups:
                        group["eps"] = eps
                    scaler.step(optimizer)
                    scaler.update()
                    hooks.after_step(model)
                    loop["nonfinite"] = 0
                optimizer.zero_grad(set_to_none=True)
                window_bad = False
                loop["global_step"] += 1

                elapsed = time.perf_counter() - epoch_start
                rate = items_done * items_per_sample / max(elapsed, 1e-9)
                remaining = (steps - step - 1) * elapsed / max(step + 1 - loop["step"], 1)
                remaining += (config.epochs - epoch - 1) * steps * elapsed / max(
                    step + 1 - loop["step"], 1)
                if runtime.is_main:
                    board.scalars({"train/loss_step": float(loss.detach()), "train/grad_norm": float(grad_norm),
                                   "train/patterns_per_s": rate,
                                   "train/learning_rate": plateau.lr},
                                  loop["global_step"])
                progress.step(epoch, step + 1, steps, float(loss.detach()), rate, remaining)

                if agree(stop_requested.is_set(), runtime, any_rank=True):
                    totals = reduce_sums(loop, runtime)
                    save(dict(loop, epoch=epoch, step=step + 1, **totals))
                    raise TrainingInterrupted(
                        f"training interrupted at epoch {epoch + 1}, step {step + 1}; "
                        + (f"checkpoint saved to {checkpoint_path}; resume to continue"
                           if checkpoint_path else "no checkpoint directory was given"))

            # --- end of epoch: validate, schedule, log, checkpoint ----------------------------
            totals = reduce_sums(loop, runtime)
            items = max(totals["items"], 1.0)
            summary = {f"train_{k}": v / items for k, v in totals["sums"].items()}
            if has_val:
                summary.update({f"val_{k}": v for k, v in
                                _evaluate(evaluator, loss_fn, val_set, config, runtime,
                                          autocast_dtype).items()})
            monitored = summary.get("val_loss", summary.get("train_loss", math.inf))
            summary["learning_rate"] = plateau.lr  # the rate this epoch ran with
            summary["seconds"] = time.perf_counter() - epoch_start
            summary["epoch"] = epoch + 1
            new_lr = plateau.update(monitored)
            if config.schedule == "cosine":  # the plateau's state is kept but not used
                new_lr = plateau.lr = cosine_lr(config.learning_rate, config.min_learning_rate,
                                                epoch + 1, config.epochs)
            hooks.set_learning_rate(optimizer, new_lr)
            loop["stopped_early"] = stopper.update(summary.get("train_loss", math.inf))
            loop["history"].append(summary)
            loop.update(epoch=epoch + 1, step=0, sums={}, items=0.0)
            if runtime.is_main:
                board.scalars({f"epoch/{k}": v for k, v in summary.items() if k != "epoch"},
                              epoch + 1)
                if preview is not None and config.log_images:
                    model.eval()
                    with torch.no_grad():
                        board.images(preview(model), epoch + 1)
            progress.epoch(epoch, {k: v for k, v in summary.items()
                                   if k in ("train_loss", "val_loss", "train_deviance",
                                            "val_deviance", "learning_rate")},
                           summary["seconds"])
            save(loop)
            if loop["stopped_early"]:
                progress.message(f"early stopping: the training loss has not improved for "
                                 f"{stopper.patience} epochs")
    except RuntimeError as exc:  # the watchdog: partners that stopped answering
        failure = collective_failure(exc, runtime)
        if failure is None:
            raise
        raise failure from None
    finally:
        restore_signals()
        board.close()
        teardown(runtime)
    return TrainResult(history=loop["history"], stopped_early=loop["stopped_early"])


# --- helpers ----------------------------------------------------------------------------------


def _canonical_json(run_info: Any) -> str:
    """``run_info`` as canonical JSON: it is stored in checkpoints and compared on resume as
    JSON (a tuple and the list it comes back as are the same)."""
    try:
        return json.dumps(run_info, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_info must be JSON-able, as it is stored in checkpoints: {exc}"
                          ) from None


def _zero_objective(model: nn.Module) -> torch.Tensor:
    """A scalar 0 that depends on every trainable parameter (its gradients are all 0)."""
    return sum(p.sum() * 0.0 for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def _evaluate(model: nn.Module, loss_fn: LossFn, dataset: Any, config: TrainingConfig,
              runtime: Runtime, autocast_dtype: torch.dtype | None) -> dict[str, float]:
    """Mean loss and metrics over a dataset, sharded over ranks."""
    model.eval()
    order = torch.arange(len(dataset))
    sums: dict[str, float] = {}
    items = 0
    world_batch = config.batch_size * runtime.world_size
    for start in range(0, len(dataset), world_batch):
        local = shard(order[start:start + world_batch], runtime)
        if len(local) == 0:
            continue
        batch = to_device(collate(dataset, local), runtime.device)
        with torch.autocast(runtime.device.type, dtype=autocast_dtype,
                            enabled=autocast_dtype is not None):
            loss, metrics = loss_fn(model, batch)
        for name, value in {"loss": loss, **metrics}.items():
            sums[name] = sums.get(name, 0.0) + float(value) * len(local)
        items += len(local)
    totals = reduce_sums({"sums": sums, "items": float(items)}, runtime)
    return {k: v / max(totals["items"], 1.0) for k, v in totals["sums"].items()}
