"""Batches for the training loop: a rank's share of a global batch, collation, device moves."""

from __future__ import annotations

from typing import Any

import torch

from pinn.engine.distributed import Runtime


def shard(indices: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """This rank's contiguous share of a global batch (as even as possible)."""
    if not runtime.distributed:
        return indices
    return torch.tensor_split(indices, runtime.world_size)[runtime.rank]


def collate(dataset: Any, indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch dict: ``dataset.get_batch(indices)`` when it exists, else stacked items."""
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    items = [dataset[int(i)] for i in indices]
    return {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0]}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
