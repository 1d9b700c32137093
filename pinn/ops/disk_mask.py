"""The reference's hard circular probe mask."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_size


def disk_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """A ``(size, size)`` float32 mask: 1 where ``r < size // 4``, else 0.

    ``r`` is the distance of each pixel centre from ``((size-1)/2, (size-1)/2)`` (half a pixel
    off the patch centre pixel ``size//2``, as in the TensorFlow reference).
    """
    size = check_size("size", size)
    coord = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    radius = torch.sqrt(coord[:, None] ** 2 + coord[None, :] ** 2)
    return (radius < size // 4).to(torch.float32)
