"""One rank of the DDP watchdog test: runs the ``pinn`` command as ``torchrun`` would start
it, except that one rank disturbs its fourth ``torch.distributed.all_reduce`` call (pinn's
agreements and sums go through it; DDP's gradient reduction does not; the first is the
validation loss of the untrained model, so the fourth is where the third was before it).

    RANK=r WORLD_SIZE=2 MASTER_ADDR=... MASTER_PORT=... PINN_DDP_TIMEOUT_S=T \\
        python _stall_worker.py MODE STALL_RANK pinn-arguments...

MODE ``stall``: that rank sleeps ``3 T`` seconds before the call (it is alive but does not
answer). MODE ``hang``: it sleeps for ever (until
killed). MODE ``stall-forward``: the same as ``stall`` before its third DDP forward (the other rank then
waits inside DDP's own collectives). MODE ``skip``: that rank skips the ``all_reduce`` call (a
collective the other rank joins) and goes on.
"""

from __future__ import annotations

import os
import sys
import time

import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pinn.cli import main


def disturb(mode: str) -> None:
    owner, name = (DistributedDataParallel, "forward") if mode == "stall-forward" else (
        dist, "all_reduce")
    original = getattr(owner, name)
    calls = 0

    def disturbed(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == (3 if mode == "stall-forward" else 4):
            if mode == "skip":
                return None
            time.sleep(1e6 if mode == "hang" else 3 * float(os.environ["PINN_DDP_TIMEOUT_S"]))
        return original(*args, **kwargs)

    setattr(owner, name, disturbed)


if __name__ == "__main__":
    mode, stall_rank, *argv = sys.argv[1:]
    if os.environ["RANK"] == stall_rank:
        disturb(mode)
    sys.exit(main(argv))
