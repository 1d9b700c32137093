"""One rank of the DDP test, started with the environment ``torchrun`` gives its workers.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=... MASTER_PORT=... python _ddp_worker.py OUT_DIR

For each scenario of ``SCENARIOS`` it trains the tiny model with ``checkpoint_dir`` and
``log_dir`` under ``OUT_DIR/<scenario>/`` and writes this rank's final weights, history and
number of checkpoint writes to ``OUT_DIR/<scenario>/rank<r>.*``; then it runs the "even"
scenario once more, interrupted by SIGTERM and resumed, under ``OUT_DIR/interrupted/``. The
process group is created here once, so that the trainings share it (``train`` leaves it alone).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _engine_helpers import ImageSet, config, make_model, mse_loss, save_result
from pinn.engine import checkpoint as ckpt
from pinn.engine.train import TrainingInterrupted, train

PER_RANK_BATCH = 2
#: name -> (training items, validation items); 9 and 1 leave rank 1 an empty share of the
#: last training batch and of the validation set.
SCENARIOS = {"even": (16, 6), "uneven": (9, 1)}


def interrupted_run(directory: Path, rank: int) -> None:
    """The "even" scenario, but rank 0 alone gets SIGTERM in the last step of epoch 2; both
    ranks stop with TrainingInterrupted and then resume (non-main ranks with empty sums)."""
    n_train, n_val = SCENARIOS["even"]
    steps_per_epoch = n_train // (2 * PER_RANK_BATCH)
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        calls += model.training
        if rank == 0 and model.training and calls == 2 * steps_per_epoch:
            os.kill(os.getpid(), signal.SIGTERM)
        return mse_loss(model, batch)

    kwargs = dict(checkpoint_dir=directory / "ckpt", verbose=False)
    try:
        train(make_model(seed=3), loss_fn, ImageSet(n_train), ImageSet(n_val, seed=2),
              config(epochs=3, batch_size=PER_RANK_BATCH, seed=3), **kwargs)
    except TrainingInterrupted:
        (directory / f"rank{rank}.interrupted").touch()
    model = make_model(seed=3)
    result = train(model, mse_loss, ImageSet(n_train), ImageSet(n_val, seed=2),
                   config(epochs=3, batch_size=PER_RANK_BATCH, seed=3), resume=True, **kwargs)
    save_result(directory / f"rank{rank}.safetensors", model, result.history)


def main() -> int:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()

    writes = 0
    original_write = ckpt.atomic_write_bytes

    def counting_write(path, data):
        nonlocal writes
        writes += 1
        original_write(path, data)

    ckpt.atomic_write_bytes = counting_write
    try:
        for name, (n_train, n_val) in SCENARIOS.items():
            writes = 0
            directory = out / name
            model = make_model(seed=3)
            result = train(model, mse_loss, ImageSet(n_train), ImageSet(n_val, seed=2),
                           config(epochs=3, batch_size=PER_RANK_BATCH, seed=3),
                           checkpoint_dir=directory / "ckpt", log_dir=directory / "tb",
                           verbose=True)
            save_result(directory / f"rank{rank}.safetensors", model, result.history)
            (directory / f"rank{rank}.writes").write_text(json.dumps(writes))
        interrupted_run(out / "interrupted", rank)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    assert int(os.environ["WORLD_SIZE"]) == 2
    status = main()
    # Every result is on disk and the process group is gone. Skip the interpreter's teardown:
    # gloo's threads have been seen to abort it ("terminate called without an active
    # exception", exit -6) after a run that completed, at random, which says nothing about
    # the engine under test.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
