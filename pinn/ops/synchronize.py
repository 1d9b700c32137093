"""Phase synchronisation of overlapping patches before they are averaged."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pinn.ops._checks import check_patches_at, check_shape_pair, check_tensor
from pinn.ops._precision import full_precision, no_autocast
from pinn.ops.extract_patches import extract_patches
from pinn.ops.stitch import normalize_stitch, stitch_sums


def phase_offsets(patches: torch.Tensor, positions: torch.Tensor, canvas_shape: Sequence[int],
                  weights: torch.Tensor, rounds: int) -> torch.Tensor:
    """The constant phase of each patch relative to the others where they overlap.

    Each patch of a ptychographic reconstruction may carry its own constant phase: the
    patterns it was reconstructed from do not change when the object is multiplied by
    ``exp(i c)``. Averaging patches whose constants disagree blurs the phase of the stitched
    image. This finds constants ``phi`` for which ``patches * exp(-i phi)`` agree: starting
    from 0, each round stitches the rotated patches (:func:`pinn.ops.stitch_sums`, with
    ``weights``) and sets each ``phi`` to the phase of the patch's weighted inner product with
    that image, ``angle(sum w * patch * conj(image))`` over the patch's pixels (a power
    iteration of the angular synchronisation problem; each round carries the agreement about
    one patch spacing further). The constants are then shifted together so that their
    weighted mean phase is 0, which keeps the image's overall phase.

    Args:
        patches: ``(P, n, m)`` complex.
        positions: ``(P, 2)`` real, ``(y, x)`` canvas pixels of each patch's centre pixel
            ``(n//2, m//2)``.
        canvas_shape: ``(H, W)`` of the canvas the patches are stitched on.
        weights: ``(P, n, m)`` real, >= 0, the weight of each patch pixel (e.g. the probe's
            illumination), as for :func:`pinn.ops.stitch_sums`.
        rounds: the number of rounds, >= 0 (0 returns zeros).

    Returns:
        ``(P,)`` float32 (float64 for double input) radians; ``patches * exp(-1j * phi)`` are
        the synchronised patches.
    """
    check_tensor("patches", patches)
    check_tensor("positions", positions)
    check_tensor("weights", weights)
    check_patches_at(patches, positions)
    shape = check_shape_pair("canvas_shape", canvas_shape)
    if patches.dim() != 3 or not patches.is_complex():
        raise ValueError(f"patches has shape {tuple(patches.shape)} and dtype {patches.dtype};"
                         " expected complex (P, n, m)")
    if weights.shape != patches.shape or weights.is_complex():
        raise ValueError(f"weights has shape {tuple(weights.shape)}; expected real "
                         f"{tuple(patches.shape)} like the patches")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds is {rounds!r}; use an int >= 0")
    with no_autocast(patches.device):
        patches = full_precision(patches)
        weights = full_precision(weights).to(patches.real.dtype)
        positions = full_precision(positions).to(patches.real.dtype)
        phi = torch.zeros(patches.shape[0], dtype=patches.real.dtype, device=patches.device)
        if rounds == 0:
            return phi
        n, m = patches.shape[-2:]
        if n != m:
            raise ValueError(f"patches are {n} x {m}; phase_offsets needs square patches")
        weighted = weights * patches
        for _ in range(rounds):
            rotated = patches * torch.polar(torch.ones_like(phi), -phi)[:, None, None]
            sums, coverage = stitch_sums(rotated[None], positions[None], shape,
                                         weights=weights[None])
            image = normalize_stitch(sums, coverage, 1e-9 * float(coverage.max()))
            windows = extract_patches(image, positions[None], n)[0]  # (P, n, n)
            phi = torch.angle((weighted * windows.conj()).sum(dim=(-2, -1)))
        mass = weights.sum(dim=(-2, -1))
        mean = torch.angle((mass * torch.polar(torch.ones_like(phi), phi)).sum())
        return torch.remainder(phi - mean + torch.pi, 2 * torch.pi) - torch.pi
