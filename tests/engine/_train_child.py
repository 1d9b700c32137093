"""A training run for the kill-and-resume tests, started as a separate process.

    python _train_child.py CHECKPOINT_DIR RESULT_FILE [--resume]

Builds the tiny model (with dropout) and data deterministically, trains with ``checkpoint_dir``
and, when training finishes, writes the final weights to RESULT_FILE (safetensors) and the
history next to it (.json). Exit status 3 means TrainingInterrupted.

Hooks, for the parent test to make a kill land at a known point:

- ``PINN_TEST_PAUSE_AT_CALL=k``: before the k-th training forward (1-based), create
  ``CHECKPOINT_DIR/../paused`` and block until ``../release`` exists (or the process is killed).
- ``PINN_TEST_PAUSE_IN_WRITE=j``: during the j-th checkpoint write, after half of the bytes
  went into the temporary file, create ``paused`` and block the same way.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from _engine_helpers import ImageSet, config, make_model, mse_loss, save_result
from pinn import atomic
from pinn.engine import checkpoint as ckpt
from pinn.engine.train import TrainingInterrupted, train

CONFIG = dict(epochs=4, batch_size=3, grad_accumulation=2, grad_clip_norm=0.5,
              learning_rate=2e-2, plateau_patience=1, min_learning_rate=1e-4,
              early_stopping_patience=3, seed=7, keep_best=True)
N_TRAIN, N_VAL = 20, 6
STEPS_PER_EPOCH = 7  # ceil(20 / 3) micro-batches
RUN_INFO = {"test": "resume", "config": CONFIG, "shape": (N_TRAIN, 1, 8, 8)}


def pause(control: Path) -> None:
    (control / "paused").touch()
    while not (control / "release").exists():
        time.sleep(0.02)


def main() -> int:
    checkpoint_dir, result = Path(sys.argv[1]), Path(sys.argv[2])
    resume = "--resume" in sys.argv[3:]
    control = checkpoint_dir.parent
    torch.set_num_threads(1)

    pause_call = int(os.environ.get("PINN_TEST_PAUSE_AT_CALL", "0"))
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        if model.training:
            calls += 1
            if calls == pause_call:
                pause(control)
            return mse_loss(model, batch)
        # A validation loss that never improves, so that the plateau cuts the rate every
        # epoch from the second on (val_mae stays the real one).
        _, metrics = mse_loss(model, batch)
        return torch.tensor(1.0), metrics

    pause_write = int(os.environ.get("PINN_TEST_PAUSE_IN_WRITE", "0"))
    writes = 0
    original_write = ckpt.atomic_write_bytes

    def write(path, data):
        nonlocal writes
        writes += 1
        if writes != pause_write:
            return original_write(path, data)
        with atomic.atomic_open(path) as handle:
            handle.write(data[:len(data) // 2])
            handle.flush()
            pause(control)
            handle.write(data[len(data) // 2:])

    ckpt.atomic_write_bytes = write

    model = make_model(seed=CONFIG["seed"], dropout=0.3)
    try:
        outcome = train(model, loss_fn, ImageSet(N_TRAIN), ImageSet(N_VAL, seed=2),
                        config(**CONFIG), checkpoint_dir=checkpoint_dir, resume=resume,
                        run_info=RUN_INFO, verbose=True)
    except TrainingInterrupted as exc:
        print(f"TrainingInterrupted: {exc}", file=sys.stderr)
        return 3
    save_result(result, model, outcome.history)
    return 0


if __name__ == "__main__":
    sys.exit(main())
