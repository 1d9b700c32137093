"""Probe illumination of object patches."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast


def illuminate(
    patches: torch.Tensor, probe: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Exit waves ``patches * probe`` (times ``mask`` when given).

    Args:
        patches: ``(..., N, N)`` complex object patches (real is promoted to complex).
        probe: ``(N, N)`` complex probe, or any shape broadcasting against ``patches``.
        mask: optional real ``(N, N)`` mask applied to the exit wave (the reference's
            ``probe.mask`` uses :func:`pinn.ops.disk_mask`).

    Returns:
        ``(..., N, N)`` complex64 (complex128 for double input).
    """
    check_tensor("patches", patches)
    check_tensor("probe", probe)
    check_min_dims("patches", patches, 2, "(..., N, N)")
    check_min_dims("probe", probe, 2, "(N, N)")
    if patches.shape[-2:] != probe.shape[-2:]:
        raise ValueError(f"probe has shape {tuple(probe.shape)} but the patches are "
                         f"{tuple(patches.shape[-2:])}; the probe must have the patch size")
    try:
        torch.broadcast_shapes(patches.shape, probe.shape)
    except RuntimeError:
        raise ValueError(f"probe has shape {tuple(probe.shape)}, which does not broadcast against "
                         f"the patches {tuple(patches.shape)}") from None
    if mask is not None:
        check_tensor("mask", mask)
    with no_autocast(patches.device):
        wave = full_precision(patches) * full_precision(probe)
        if not wave.is_complex():
            wave = torch.complex(wave, torch.zeros_like(wave))
        if mask is not None:
            wave = wave * full_precision(mask).to(wave.real.dtype)
        return wave
