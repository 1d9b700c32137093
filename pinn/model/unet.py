"""A residual U-Net generator: diffraction amplitudes -> two real maps per object patch.

The same contract as the reference CNN (``pinn.model.generator``): normalised amplitudes
``(B, C, N, N)`` in, a pair ``(B, C_out, N, N)`` out (amplitude / phase or real / imaginary,
see :mod:`pinn.model.output`). Unlike the CNN it keeps the encoder's features: each
resolution's encoder output is added to the decoder at the same resolution (skip
connections), and every stage is a residual block, so the gradient reaches the early layers
directly. One decoder serves both output maps.

Layout at width ``w`` (N = 64): a 3x3 stem, then levels at N, N/2, N/4 with ``w, 2w, 4w``
channels (residual block, then a stride-2 3x3 convolution down), a bottleneck of two residual
blocks at 8 x 8 with ``8w`` channels (capped at ``8w`` for larger N), then back up with 2x2
transposed convolutions, each followed by the skip addition and a residual block, and a 3x3
head with ``2 C_out`` channels. Activations are SiLU; there is no normalisation layer, so a
patch's output never depends on the other items of its batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from pinn.model.output import activate, centre_window, init_head, mask_outside_centre

#: The U-Net halves the resolution down to this side.
BOTTLENECK_PX = 8
#: The widest level has at most this many times the first level's channels.
MAX_WIDTH_FACTOR = 8


class ResidualBlock(nn.Module):
    """``x + conv(silu(conv(silu(x))))`` with 3x3 convolutions, same shape in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        # a small last layer starts every block near the identity, so that the stacked
        # residual blocks train without a normalisation layer
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class UNet(nn.Module):
    """Normalised amplitudes ``(B, C, N, N)`` -> two real maps ``(B, C_out, N, N)``.

    Args:
        size_px: patch side N (a power of two >= 16).
        channels: input channels ``C = gridsize**2``.
        out_channels: ``C_out`` (``C`` with ``object_big``, else 1).
        width: channels of the first level.
        output: ``"amp_phase"`` or ``"real_imag"`` (:mod:`pinn.model.output`).
        amp_activation: the amplitude activation for ``"amp_phase"``.
        centre_only: zero everything outside the centre N/2 window (the CNN's ``pad_object``
            without the border branch).
    """

    def __init__(self, size_px: int, channels: int, out_channels: int, width: int = 32,
                 output: str = "amp_phase", amp_activation: str = "sigmoid",
                 centre_only: bool = False) -> None:
        super().__init__()
        levels = int(math.log2(size_px // BOTTLENECK_PX))
        widths = [width * min(2**level, MAX_WIDTH_FACTOR) for level in range(levels + 1)]
        self.output, self.amp_activation = output, amp_activation
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.encoder = nn.ModuleList(ResidualBlock(w) for w in widths[:-1])
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1)
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.bottleneck = nn.Sequential(ResidualBlock(widths[-1]), ResidualBlock(widths[-1]))
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2)
                                for a, b in zip(widths[:-1], widths[1:]))
        self.decoder = nn.ModuleList(ResidualBlock(w) for w in widths[:-1])
        self.head = nn.Conv2d(widths[0], 2 * out_channels, 3, padding=1)
        init_head(self.head, output, out_channels)
        self.register_buffer("centre_mask", centre_window(size_px) if centre_only else None,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(x)  # (B, w, N, N)
        skips = []
        for block, down in zip(self.encoder, self.down):
            h = block(h)
            skips.append(h)
            h = down(h)  # (B, 2w, H/2, W/2)
        h = self.bottleneck(h)  # (B, 8w, 8, 8) at N = 64
        for level in reversed(range(len(self.up))):
            h = self.up[level](h) + skips[level]  # (B, w_level, 2H, 2W)
            h = self.decoder[level](h)
        first, second = self.head(F.silu(h)).chunk(2, dim=1)  # (B, C_out, N, N) each
        return mask_outside_centre(*activate(first, second, self.output, self.amp_activation),
                                   mask=self.centre_mask)
