"""Modulus projection of group canvases: error-reduction updates against measured amplitudes."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_coordinates, check_min_dims, check_tensor
from pinn.ops._precision import full_precision, no_autocast
from pinn.ops.extract_patches import extract_patches
from pinn.ops.reassemble_patches import reassemble_patches

#: The update divides by the probe power the canvas pixel receives plus this fraction of the
#: canvas's largest such power, which keeps barely lit pixels from taking huge steps.
REGULARIZATION = 0.05


def project_amplitudes(canvas: torch.Tensor, positions: torch.Tensor, modes: torch.Tensor,
                       amplitude: torch.Tensor, steps: int, mask: torch.Tensor | None = None,
                       step_size: float = 1.0,
                       regularization: float = REGULARIZATION) -> torch.Tensor:
    """``steps`` parallel error-reduction updates of each canvas against its patterns.

    Each step lights the canvas at every position (patch ``extract_patches(canvas)`` times
    every probe mode, and ``mask``), replaces the far-field amplitude of the exit waves by the
    measured one while keeping their phases (for ``K`` modes every mode is scaled by
    ``amplitude / sqrt(sum_k |F psi_k|**2)``, the nearest waves whose incoherent sum has the
    measured amplitude), and moves the canvas to the least-squares fit of the corrected waves:

        canvas += step_size * reassemble(sum_k conj(P_k) (psi'_k - psi_k))
                  / (w + regularization * max w),
        w = reassemble(sum_k |P_k|**2)

    where ``reassemble`` is :func:`pinn.ops.reassemble_patches` (the adjoint of the
    extraction) and ``P_k`` the masked probe modes. This is a preconditioned gradient step on
    ``0.5 * sum (|F psi| - amplitude)**2`` that never increases it for ``0 < step_size < 2``
    (1 is error reduction proper; above 1 over-relaxed, which converges faster; docs/DESIGN.md
    §11).
    Canvas pixels that no probe reaches are left as they are. The far field is
    :func:`pinn.ops.far_field_amplitude`'s: the unitary ``fft2``, zero frequency at
    ``(N//2, N//2)`` of ``amplitude``.

    Args:
        canvas: ``(B, H, W)`` complex object canvases.
        positions: ``(B, C, 2)`` real, ``(y, x)`` canvas pixels of each pattern's centre pixel
            ``(N//2, N//2)`` (subpixel positions are interpolated bilinearly).
        modes: ``(K, N, N)`` complex probe modes (``(N, N)`` for one), in the units that make
            ``far_field_amplitude(patch * modes)`` comparable with ``amplitude``.
        amplitude: ``(B, C, N, N)`` real measured far-field amplitudes (square roots of
            intensities), zero frequency at the centre.
        steps: number of updates, >= 0 (0 returns ``canvas`` unchanged).
        mask: optional real ``(N, N)`` exit-wave mask (as in :func:`pinn.ops.illuminate`).
        step_size: the relaxation, in (0, 2); see above.
        regularization: >= 0; see above.

    Returns:
        ``(B, H, W)`` complex64 (complex128 for double input), differentiable in every input.
    """
    check_tensor("canvas", canvas)
    check_tensor("positions", positions)
    check_tensor("modes", modes)
    check_tensor("amplitude", amplitude)
    check_min_dims("canvas", canvas, 3, "(B, H, W)")
    check_coordinates("positions", positions, "(B, C, 2)")
    check_min_dims("modes", modes, 2, "(K, N, N)")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps is {steps!r}; use an int >= 0")
    if not 0 < step_size < 2:
        raise ValueError(f"step_size is {step_size}; use a value in (0, 2)")
    if regularization < 0:
        raise ValueError(f"regularization is {regularization}; it must be >= 0")
    modes = modes[None] if modes.dim() == 2 else modes
    batch, count = positions.shape[:2]
    n = modes.shape[-1]
    expected = (batch, count, n, n)
    if positions.dim() != 3 or canvas.dim() != 3 or canvas.shape[0] != batch:
        raise ValueError(f"canvas has shape {tuple(canvas.shape)} and positions "
                         f"{tuple(positions.shape)}; expected (B, H, W) and (B, C, 2)")
    if modes.dim() != 3 or modes.shape[-2] != n or tuple(amplitude.shape) != expected:
        raise ValueError(f"modes has shape {tuple(modes.shape)} and amplitude "
                         f"{tuple(amplitude.shape)}; expected (K, N, N) and (B, C, N, N) = "
                         f"{expected}")
    if steps == 0:
        return canvas
    with no_autocast(canvas.device):
        canvas = full_precision(canvas)
        if not canvas.is_complex():
            canvas = torch.complex(canvas, torch.zeros_like(canvas))
        modes = full_precision(modes).to(canvas.dtype)
        if mask is not None:
            modes = modes * full_precision(mask).to(modes.real.dtype)
        target = torch.fft.ifftshift(full_precision(amplitude), dim=(-2, -1))[:, :, None]
        size = tuple(canvas.shape[-2:])
        power = modes.abs().square().sum(dim=0).expand(batch, count, n, n)
        weight = reassemble_patches(power, positions, size)  # (B, H, W)
        weight = weight + regularization * weight.amax(dim=(-2, -1), keepdim=True)
        weight = torch.where(weight > 0, weight, torch.ones_like(weight))  # unlit: no step
        for _ in range(steps):
            waves = extract_patches(canvas, positions, n)[:, :, None] * modes  # (B, C, K, N, N)
            spectrum = torch.fft.fft2(waves, norm="ortho")
            modulus = spectrum.abs().square().sum(dim=2, keepdim=True).sqrt()  # (B, C, 1, N, N)
            # where the waves have no far field there is no phase to keep: leave them at 0
            ratio = torch.where(modulus > 0, target / modulus.clamp_min(1e-30),
                                torch.zeros_like(modulus))
            change = torch.fft.ifft2(spectrum * ratio, norm="ortho") - waves
            patches = (modes.conj() * change).sum(dim=2)  # (B, C, N, N)
            canvas = canvas + reassemble_patches(patches, positions, size) * (step_size / weight)
        return canvas
