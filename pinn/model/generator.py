"""The PtychoPINN CNN: diffraction amplitudes -> object amplitude and phase patches.

The reference's network exactly (docs/DESIGN.md §7.5): a plain encoder-decoder without
skip connections. The encoder halves the resolution with conv-conv-maxpool blocks down to 8x8;
two decoders with separate weights (amplitude and phase) double it back with conv-conv-upsample
blocks to N/2, then an output head per decoder. Every convolution is 3x3 with 'same' padding
and ReLU, pooling is 2x2, upsampling is nearest-neighbour, weights start glorot-uniform and
biases at zero, as in Keras.

Parameter counts match the reference at its ``n_filters_scale`` 2: 2,331,772 at N=64 and
gridsize 1, 2,340,208 at gridsize 2 (with the border branch, ``probe_big``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from pinn.model.output import AMP_ACTIVATIONS, phase_activation

if TYPE_CHECKING:  # the model reads a config's fields but never imports the config module
    from pinn.config import ModelConfig

#: Encoder and decoder filter ladders per patch size, before ``n_filters_scale``.
ENCODER_FILTERS = {64: (32, 64, 128), 128: (16, 32, 64, 128), 256: (8, 16, 32, 64, 128)}
DECODER_FILTERS = {64: (64, 32), 128: (128, 64, 32), 256: (256, 128, 64, 32)}
#: Feature channels the decoder head hands to the border branch (the reference's ``c_outer``).
BORDER_CHANNELS = 4


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    nn.init.xavier_uniform_(conv.weight)  # Keras glorot_uniform: same fan computation
    nn.init.zeros_(conv.bias)
    return conv


class ConvBlock(nn.Module):
    """Conv3x3-ReLU, Conv3x3-ReLU, then 2x max-pool (``down``) or 2x nearest upsampling."""

    def __init__(self, in_channels: int, out_channels: int, down: bool) -> None:
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels)
        self.conv2 = _conv(out_channels, out_channels)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        if self.down:
            return F.max_pool2d(x, 2)  # (B, F, H/2, W/2); 'same' pooling on even sizes
        return F.interpolate(x, scale_factor=2, mode="nearest")  # (B, F, 2H, 2W)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class DecoderHead(nn.Module):
    """The output head of one decoder (``create_decoder_last``).

    With ``pad_object``, a 3x3 conv on all but the last 4 feature channels gives the centre
    N/2 x N/2 window, zero-padded by N/4 on every side; with ``probe_big`` a border branch
    (conv-conv-upsample, 3x3 conv, swish) on the last 4 channels fills the rest of the patch.
    Without ``pad_object`` the whole patch comes from conv-conv-upsample and a 3x3 conv.
    """

    def __init__(self, size_px: int, features: int, out_channels: int, up_filters: int,
                 activation, pad_object: bool, probe_big: bool) -> None:
        super().__init__()
        self.activation = activation
        self.pad_object = pad_object
        self.probe_big = probe_big
        if pad_object:
            self.center = _conv(features - BORDER_CHANNELS, out_channels)
            if probe_big:
                self.border_up = ConvBlock(BORDER_CHANNELS, up_filters, down=False)
                self.border = _conv(up_filters, out_channels)
                quarter = size_px // 4
                border_mask = torch.ones(size_px, size_px)
                border_mask[quarter:size_px - quarter, quarter:size_px - quarter] = 0
                self.register_buffer("border_mask", border_mask, persistent=False)
        else:
            self.full_up = ConvBlock(features, up_filters, down=False)
            self.full = _conv(up_filters, out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.pad_object:
            return self.activation(self.full(self.full_up(features)))  # (B, C_out, N, N)
        half = features.shape[-1]  # N/2
        quarter = half // 2  # N/4
        center = self.activation(self.center(features[:, :-BORDER_CHANNELS]))  # (B, C_out, N/2, N/2)
        out = F.pad(center, (quarter, quarter, quarter, quarter))  # (B, C_out, N, N)
        if self.probe_big:
            border = F.silu(self.border(self.border_up(features[:, -BORDER_CHANNELS:])))
            out = out + border * self.border_mask.to(border.dtype)
        return out


class CNNGenerator(nn.Module):
    """Diffraction amplitudes ``(B, C, N, N)`` -> amplitude and phase ``(B, C_out, N, N)``.

    ``C = gridsize**2``; ``C_out = C`` with ``object_big``, else 1. The input is the normalised
    amplitude (the intensity scale already divided out). Phase is ``pi * tanh`` in the centre.
    With ``output="real_imag"`` the two decoders give the real and imaginary parts instead,
    through heads without activation (the real head's bias starts at 0.5).
    """

    def __init__(self, size_px: int, channels: int, out_channels: int, n_filters_scale: int = 2,
                 amp_activation: str = "sigmoid", pad_object: bool = True,
                 probe_big: bool = True, output: str = "amp_phase") -> None:
        super().__init__()
        scale = n_filters_scale
        encoder, in_channels = [], channels
        for filters in ENCODER_FILTERS[size_px]:
            encoder.append(ConvBlock(in_channels, scale * filters, down=True))
            in_channels = scale * filters
        self.encoder = nn.Sequential(*encoder)
        up_filters = scale * 2048 // size_px

        def decoder(activation) -> nn.Sequential:
            blocks, width = [], in_channels
            for filters in DECODER_FILTERS[size_px]:
                blocks.append(ConvBlock(width, scale * filters, down=False))
                width = scale * filters
            head = DecoderHead(size_px, width, out_channels, up_filters, activation, pad_object, probe_big)
            return nn.Sequential(*blocks, head)

        if output == "real_imag":
            self.amplitude, self.phase = decoder(_identity), decoder(_identity)
            head = self.amplitude[-1]
            with torch.no_grad():  # start near a clear object: real part 0.5, imaginary 0
                nn.init.constant_(head.center.bias if pad_object else head.full.bias, 0.5)
        else:
            self.amplitude = decoder(AMP_ACTIVATIONS[amp_activation])
            self.phase = decoder(phase_activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)  # (B, F_enc, 8, 8)
        return self.amplitude(code), self.phase(code)


def build_generator(config: ModelConfig) -> CNNGenerator:
    """The reference CNN with the sizes and options of ``config`` (whatever its
    ``generator``; :func:`pinn.model.make_generator` picks the network by name)."""
    return CNNGenerator(
        size_px=config.size_px,
        channels=config.channels,
        out_channels=config.channels if config.object_big else 1,
        n_filters_scale=config.n_filters_scale,
        amp_activation=config.amp_activation,
        pad_object=config.pad_object,
        probe_big=config.probe_big,
        output=config.output,
    )
