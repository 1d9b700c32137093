"""The reference's hard circular probe mask."""

from __future__ import annotations

import torch


def disk_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """A ``(size, size)`` float32 mask: 1 where ``r < size // 4``, else 0.

    ``r`` is the distance of each pixel centre from ``((size-1)/2, (size-1)/2)`` (half a pixel
    off the patch centre pixel ``size//2``, as in the TensorFlow reference).
    """
    if int(size) != size or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    size = int(size)
    coord = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    radius = torch.sqrt(coord[:, None] ** 2 + coord[None, :] ** 2)
    return (radius < size // 4).to(torch.float32)
