"""The mixed-state ptychographic forward model with a hand-written backward."""

from __future__ import annotations

import math

import torch

from pinn.ops._checks import check_coordinates, check_min_dims, check_tensor
from pinn.ops._precision import no_autocast


def _ramp(shift: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Separable phase ramps ``exp(-2 pi i k d / n)`` for shifts ``(B, 2)`` -> ``(B, n, n)``,
    and the signed frequencies (cycles per pixel) ``(n,)``."""
    k = torch.fft.fftfreq(n, device=shift.device, dtype=shift.dtype)
    ry = torch.polar(torch.ones((), dtype=shift.dtype, device=shift.device).expand(
        shift.shape[0], n), (-2 * math.pi) * shift[:, 0, None] * k)  # (B, n)
    rx = torch.polar(torch.ones((), dtype=shift.dtype, device=shift.device).expand(
        shift.shape[0], n), (-2 * math.pi) * shift[:, 1, None] * k)
    return ry[:, :, None] * rx[:, None, :], k, k


class _PtychoIntensity(torch.autograd.Function):
    """Few ``(B, K, N, N)`` temporaries, the backward's updated in place: each costs a pass over
    memory and, freshly allocated, page faults (docs/DESIGN.md, "Refinement")."""

    @staticmethod
    def forward(ctx, windows, modes, shifts, centered):  # noqa: D401 - autograd protocol
        n = windows.shape[-1]
        ctx.centered = centered
        spectrum_modes = torch.fft.fft2(modes)  # (K, N, N)
        ramp, _, _ = _ramp(shifts, n)  # (B, N, N)
        probes = torch.fft.ifft2(spectrum_modes[None] * ramp[:, None])  # (B, K, N, N)
        far = torch.fft.fft2(probes * windows[:, None])  # (B, K, N, N), unnormalised
        # |far|^2 summed over modes, on the real view (several times faster than complex ops)
        parts = torch.view_as_real(far)  # (B, K, N, N, 2)
        power = parts[:, 0] * parts[:, 0]  # (B, N, N, 2)
        for k in range(1, parts.shape[1]):
            power.addcmul_(parts[:, k], parts[:, k])
        intensity = (power[..., 0] + power[..., 1]) / (n * n)
        ctx.save_for_backward(windows, spectrum_modes, shifts, ramp, probes, far)
        return torch.fft.fftshift(intensity, dim=(-2, -1)) if centered else intensity

    @staticmethod
    def backward(ctx, grad_intensity):
        windows, spectrum_modes, shifts, ramp, probes, far = ctx.saved_tensors
        n = windows.shape[-1]
        k_modes = probes.shape[1]
        want_windows, want_modes, want_shifts = ctx.needs_input_grad[:3]
        if ctx.centered:
            grad_intensity = torch.fft.ifftshift(grad_intensity, dim=(-2, -1))
        # d I / d far = 2 far / n^2 and the adjoint of the unnormalised FFT is n^2 ifft2: the
        # n^2 cancel
        grad_waves = torch.fft.ifft2(far * (2 * grad_intensity)[:, None])
        grad_windows = grad_modes = grad_shifts = None
        if want_windows:  # sum_k conj(probes_k) grad_waves_k
            grad_windows = probes[:, 0].conj() * grad_waves[:, 0]
            for k in range(1, k_modes):
                grad_windows.addcmul_(probes[:, k].conj(), grad_waves[:, k])
        if want_modes or want_shifts:
            # probes = S_f modes with the unitary shift S_f = ifft2 diag(ramp) fft2: the
            # spectra of conj(windows) grad_waves, times conj(ramp)
            spectrum_grad = torch.fft.fft2(grad_waves.mul_(windows.conj()[:, None]))
            spectrum_grad.mul_(ramp.conj()[:, None])  # (B, K, N, N)
            if want_modes:
                grad_modes = torch.fft.ifft2(spectrum_grad.sum(dim=0))
            if want_shifts:
                # d probes / d shift_y = ifft2(spectrum * ramp * (-2 pi i ky)); by Parseval
                # Re <grad, that> = (2 pi / n^2) sum ky Im(conj(G) spectrum ramp), with
                # conj(G) ramp = conj(spectrum_grad) here
                q = spectrum_grad[:, 0].conj() * spectrum_modes[0]  # (B, N, N)
                for k in range(1, k_modes):
                    q.addcmul_(spectrum_grad[:, k].conj(), spectrum_modes[k])
                k = torch.fft.fftfreq(n, device=q.device, dtype=shifts.dtype)
                imag = q.imag * (2 * math.pi / (n * n))
                grad_shifts = torch.stack([(imag.sum(dim=2) * k).sum(dim=1),
                                           (imag.sum(dim=1) * k).sum(dim=1)], dim=1)
        return grad_windows, grad_modes, grad_shifts, None


def ptycho_intensity(windows: torch.Tensor, modes: torch.Tensor,
                     shifts: torch.Tensor, centered: bool = True) -> torch.Tensor:
    """Expected far-field counts of object windows lit by subpixel-shifted probe modes.

    For each window ``b`` and mode ``k``, the probe mode is moved by ``shifts[b]`` with a
    Fourier phase ramp (``pinn.ops.fourier_shift``: ``P[y - dy, x - dx]``, periodic), multiplied
    by the window, and propagated to the far field; the modes add incoherently::

        I[b] = fftshift( sum_k |fft2(shift(P_k, d_b) * O_b)|**2 ) / N**2

    the same as ``far_field_intensity(illuminate(fourier_shift(modes, shifts[:, None]),
    windows[:, None]))``, computed with a hand-written backward (2 FFTs per window and mode
    forward, 2 backward, and few temporaries) for the refinement's speed. Gradients flow to all
    three inputs (``shifts`` in pixels, exact).

    Args:
        windows: ``(B, N, N)`` complex object windows.
        modes: ``(K, N, N)`` complex probe modes (units: sqrt(counts) per pixel).
        shifts: ``(B, 2)`` real ``(dy, dx)`` subpixel probe shifts in pixels.
        centered: zero frequency at ``(N//2, N//2)`` (the data contract); False leaves it at
            pixel ``(0, 0)`` (saves a shift forward and backward when the data are shifted
            once instead).

    Returns:
        ``(B, N, N)`` float32 intensity (float64 for complex128 input), energy preserving
        (``sum I = sum_k |shift(P_k) O|**2``).
    """
    check_tensor("windows", windows)
    check_tensor("modes", modes)
    check_tensor("shifts", shifts)
    check_min_dims("windows", windows, 3, "(B, N, N)")
    check_min_dims("modes", modes, 3, "(K, N, N)")
    check_coordinates("shifts", shifts, "(B, 2)")
    if windows.dim() != 3 or modes.dim() != 3 or shifts.dim() != 2:
        raise ValueError(f"expected windows (B, N, N), modes (K, N, N), shifts (B, 2); got "
                         f"{tuple(windows.shape)}, {tuple(modes.shape)}, {tuple(shifts.shape)}")
    if windows.shape[-2:] != modes.shape[-2:] or windows.shape[-1] != windows.shape[-2]:
        raise ValueError(f"windows {tuple(windows.shape)} and modes {tuple(modes.shape)} must be "
                         "square and of one size")
    if shifts.shape[0] != windows.shape[0]:
        raise ValueError(f"{shifts.shape[0]} shifts for {windows.shape[0]} windows")
    with no_autocast(windows.device):
        double = torch.complex128 in (windows.dtype, modes.dtype)
        complex_dtype = torch.complex128 if double else torch.complex64
        real_dtype = torch.float64 if double else torch.float32
        return _PtychoIntensity.apply(windows.to(complex_dtype), modes.to(complex_dtype),
                                      shifts.to(real_dtype), bool(centered))
