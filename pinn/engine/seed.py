"""One switch for reproducibility."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.utils.deterministic


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA), and optionally force determinism.

    With ``deterministic``, PyTorch is asked for deterministic algorithms (warning, not failing,
    where none exists), cuDNN autotuning is off, and cuBLAS gets the workspace setting it needs.
    Two CPU runs with the same seed then give bitwise-equal weights. pinn itself draws every
    random number from explicit generators; this covers weight initialisation and third-party
    code.

    Deterministic mode here does not make torch fill every new tensor with NaN
    (``torch.utils.deterministic.fill_uninitialized_memory``, torch's default in that mode):
    a safety net for code that reads memory it never wrote, which costs a pass over every
    new tensor (a fifth of a refinement step) and buys pinn's results nothing.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for the data order of one epoch, derived from the run's seed only, so
    that a resumed run draws exactly the permutation the uninterrupted run drew."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return generator
