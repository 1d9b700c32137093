"""Output parameterisations of the generators: two real maps -> complex object patches.

Every generator returns two real tensors ``(B, C_out, N, N)``. With ``output="amp_phase"``
(the reference's) they are the amplitude (an activation such as sigmoid) and the phase
(``pi * tanh``); with ``output="real_imag"`` they are the real and imaginary parts, from
linear heads (no activation). :func:`to_complex` turns either pair into complex64 patches.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

OUTPUTS = ("amp_phase", "real_imag")

AMP_ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "swish": F.silu,
    "softplus": F.softplus,
    "relu": F.relu,
}


def phase_activation(x: torch.Tensor) -> torch.Tensor:
    """``pi * tanh(x)``: the reference's phase head, in (-pi, pi)."""
    return math.pi * torch.tanh(x)


def activate(first: torch.Tensor, second: torch.Tensor, output: str,
             amp_activation: str = "sigmoid") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the output heads' activations to raw maps ``(B, C_out, N, N)`` each: amplitude
    and phase activations for ``"amp_phase"``, none for ``"real_imag"``."""
    if output == "real_imag":
        return first, second
    return AMP_ACTIVATIONS[amp_activation](first), phase_activation(second)


def to_complex(first: torch.Tensor, second: torch.Tensor, output: str) -> torch.Tensor:
    """complex64 patches from a generator's pair (computed in float32, also under autocast).

    ``amp_phase``: ``amp * exp(i phase)``, written out because ``torch.polar``'s backward uses
    ``sgn(result)``, which flips the amplitude gradient where amp < 0 (swish, the CNN's border
    branch) and zeroes it where amp == 0. ``real_imag``: ``real + i imag``.
    """
    first, second = first.float(), second.float()
    if output == "real_imag":
        return torch.complex(first, second)
    return torch.complex(first * torch.cos(second), first * torch.sin(second))


def init_head(head: nn.Conv2d, output: str, out_channels: int) -> None:
    """Start a generator's output head (``2 * out_channels`` maps) small: its weights scaled by
    0.1, and for ``"real_imag"`` its bias set to start near a clear object (real part 0.5,
    imaginary part 0)."""
    with torch.no_grad():
        head.weight.mul_(0.1)
        if output == "real_imag":
            head.bias.zero_()
            head.bias[:out_channels] = 0.5


def centre_window(size_px: int) -> torch.Tensor:
    """``(N, N)`` float32: 1 on the centre N/2 x N/2 window, 0 elsewhere."""
    quarter = size_px // 4
    window = torch.zeros(size_px, size_px)
    window[quarter:size_px - quarter, quarter:size_px - quarter] = 1
    return window


def mask_outside_centre(first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero both maps outside ``mask`` (None: unchanged), so that a generator that decodes only
    the centre window (``pad_object`` without the border branch) gives a zero object there."""
    if mask is None:
        return first, second
    mask = mask.to(first.dtype)
    return first * mask, second * mask
