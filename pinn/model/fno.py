"""A Fourier-neural-operator generator: diffraction amplitudes -> two real maps per patch.

The same contract as the reference CNN (``pinn.model.generator``): normalised amplitudes
``(B, C, N, N)`` in, a pair ``(B, C_out, N, N)`` out (see :mod:`pinn.model.output`). A 1x1
convolution lifts the input to ``width`` channels; each of ``layers`` Fourier layers adds a
spectral convolution (the lowest ``modes`` x ``modes`` frequencies of each positive and
negative row band of ``rfft2``, mixed across channels by learned complex weights, the rest
dropped) to a local 3x3 convolution, followed by GELU; a 1x1 convolution with a GELU and a
1x1 head project to the two output maps. The spectral part sees the whole N x N pattern at
once, which suits a mapping from a far-field pattern to an object, where every output pixel
depends on every input pixel.

Spectral convolutions run in float32 also under autocast (``torch.fft`` has no bfloat16 on
CPU); their complex weights are stored as real ``(..., 2)`` tensors, like the probe, so that
every optimiser, DDP and safetensors handle them.
"""

from __future__ import annotations


import torch
from torch import nn
from torch.nn import functional as F

from pinn.model.output import activate, centre_window, init_head, mask_outside_centre

#: Fourier layers of the generator.
LAYERS = 4


class SpectralConv2d(nn.Module):
    """``irfft2(W * rfft2(x))`` on the lowest ``modes`` frequencies per axis: ``(B, I, H, W)``
    real -> ``(B, O, H, W)`` float32, with complex weights ``(2, I, O, modes, modes)`` (the
    positive and the negative row band)."""

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(
            scale * torch.rand(2, in_channels, out_channels, modes, modes, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.modes
        weight = torch.view_as_complex(self.weight)  # (2, I, O, m, m) complex64
        with torch.autocast(x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float(), norm="ortho")  # (B, I, H, W//2+1)
            out = spectrum.new_zeros(x.shape[0], weight.shape[2], height, width // 2 + 1)
            out[:, :, :m, :m] = torch.einsum("bihw,iohw->bohw", spectrum[:, :, :m, :m], weight[0])
            out[:, :, -m:, :m] = torch.einsum("bihw,iohw->bohw", spectrum[:, :, -m:, :m],
                                              weight[1])
            return torch.fft.irfft2(out, s=(height, width), norm="ortho")  # (B, O, H, W)


class FNO(nn.Module):
    """Normalised amplitudes ``(B, C, N, N)`` -> two real maps ``(B, C_out, N, N)``.

    Args:
        size_px: patch side N.
        channels: input channels ``C = gridsize**2``.
        out_channels: ``C_out`` (``C`` with ``object_big``, else 1).
        width: hidden channels.
        modes: Fourier modes kept per axis (at most N/2).
        output: ``"amp_phase"`` or ``"real_imag"`` (:mod:`pinn.model.output`).
        amp_activation: the amplitude activation for ``"amp_phase"``.
        centre_only: zero everything outside the centre N/2 window.
    """

    def __init__(self, size_px: int, channels: int, out_channels: int, width: int = 32,
                 modes: int = 12, output: str = "amp_phase", amp_activation: str = "sigmoid",
                 centre_only: bool = False) -> None:
        super().__init__()
        if not 1 <= modes <= size_px // 2:
            raise ValueError(f"modes is {modes}; use 1 to N/2 = {size_px // 2}")
        self.output, self.amp_activation = output, amp_activation
        self.lift = nn.Conv2d(channels, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(LAYERS))
        self.local = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(LAYERS))
        self.project = nn.Conv2d(width, 2 * width, 1)
        self.head = nn.Conv2d(2 * width, 2 * out_channels, 1)
        init_head(self.head, output, out_channels)
        self.register_buffer("centre_mask", centre_window(size_px) if centre_only else None,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.lift(x)  # (B, width, N, N)
        for spectral, local in zip(self.spectral, self.local):
            h = F.gelu(spectral(h).to(h.dtype) + local(h))  # (B, width, N, N)
        raw = self.head(F.gelu(self.project(h)))  # (B, 2 C_out, N, N)
        first, second = raw.chunk(2, dim=1)  # (B, C_out, N, N) each
        return mask_outside_centre(*activate(first, second, self.output, self.amp_activation),
                                   mask=self.centre_mask)
