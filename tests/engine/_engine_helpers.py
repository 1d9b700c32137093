"""Shared pieces of the engine tests: a tiny model, synthetic datasets and a loss.

Everything here is deterministic given a seed, so that a test, a child process started by a
test and a resumed child build exactly the same model and data.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pinn.config import TrainingConfig
from pinn.engine.seed import seed_everything

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON = sys.executable
SIZE = 8  # side of the tiny images


class TinyNet(nn.Module):
    """conv-relu-(dropout)-conv on ``(B, 1, 8, 8)`` images; dropout makes the global torch RNG
    matter, so that exact resume also proves the RNG state is restored."""

    def __init__(self, width: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 1, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("shift", torch.zeros(()))  # a buffer must be checkpointed too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.dropout(torch.relu(self.conv1(x)))) + self.shift


class ImageSet:
    """``n`` pairs ``x -> y = blur(x) + 0.1`` drawn from ``seed``; ``get_batch`` interface."""

    def __init__(self, n: int, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, SIZE, SIZE, generator=generator)
        kernel = torch.full((1, 1, 3, 3), 1 / 9)
        self.y = torch.nn.functional.conv2d(self.x, kernel, padding=1) + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.x[indices], "y": self.y[indices]}


class ItemSet:
    """The same data as :class:`ImageSet` through ``__getitem__`` only (no ``get_batch``)."""

    def __init__(self, n: int, seed: int = 1) -> None:
        self.data = ImageSet(n, seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.data.x[i], "y": self.data.y[i]}


def mse_loss(model: nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean squared error, with the mean absolute error as a metric."""
    pred = model(batch["x"]).float()
    loss = (pred - batch["y"]).square().mean()
    return loss, {"mae": (pred - batch["y"]).abs().mean().detach()}


def make_model(seed: int = 0, dropout: float = 0.0, width: int = 4) -> TinyNet:
    """Seed as the engine asks, then build (so initial weights depend on ``seed`` only)."""
    seed_everything(seed, True)
    return TinyNet(width=width, dropout=dropout)


def config(**changes) -> TrainingConfig:
    """A small, quick configuration; plateau, early stopping and keep_best out of the way
    unless asked."""
    base = dict(epochs=2, batch_size=4, learning_rate=1e-2, min_learning_rate=1e-4,
                plateau_patience=100, early_stopping_patience=0, seed=0, keep_best=False)
    base.update(changes)
    return TrainingConfig(**base)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    different = [k for k in a if not (a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]))]
    assert not different, f"tensors differ: {different}"


def comparable_state(state) -> dict:
    """A TrainingState as a dict without what may differ between two runs of the same work:
    wall-clock entries and the run id."""
    raw = state.to_dict()
    raw["history"] = strip_times(raw["history"])
    raw.pop("elapsed_s")
    raw.pop("run_id")
    return raw


def strip_times(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """History without wall-clock entries (the only ones allowed to differ between runs)."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """Environment of a child python: the repository importable, one thread, our hooks."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PINN_TEST_") and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def save_result(path: Path, model: nn.Module, history: list[dict[str, float]]) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(history))


def load_result(path: Path) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    return load_file(str(path)), json.loads(path.with_suffix(".json").read_text())


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
