"""Tests of pinn.model.generator: output shapes per patch size and gridsize, the ranges of the
heads, and the zero border of the centre-only decoder. (Equality with the reference's Keras
network, weights and parameter counts is checked in tests/parity/test_model_parity.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from pinn.config import ModelConfig
from pinn.model import CNNGenerator, build_generator


def run(config: ModelConfig, batch: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    generator = build_generator(config).eval()
    x = torch.rand(batch, config.channels, config.size_px, config.size_px,
                   generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return generator(x)


@pytest.mark.parametrize(("n", "gridsize", "object_big", "channels_out"), [
    (64, 1, True, 1), (64, 2, True, 4), (64, 2, False, 1), (128, 1, True, 1)])
def test_output_shapes(n, gridsize, object_big, channels_out):
    config = ModelConfig(size_px=n, gridsize=gridsize, object_big=object_big, n_filters_scale=1)
    amplitude, phase = run(config)
    assert amplitude.shape == phase.shape == (2, channels_out, n, n)
    assert amplitude.dtype == phase.dtype == torch.float32


def test_build_generator_is_a_cnn_generator_and_not_torch_generator():
    generator = build_generator(ModelConfig(n_filters_scale=1))
    assert isinstance(generator, CNNGenerator) and isinstance(generator, torch.nn.Module)
    assert CNNGenerator is not torch.Generator


def test_centre_only_decoder_leaves_a_zero_border():
    """``pad_object`` without the border branch decodes the centre N/2 window and zero-pads it
    by N/4 on every side; the sigmoid amplitude and ``pi * tanh`` phase stay in range."""
    config = ModelConfig(size_px=64, probe_big=False, n_filters_scale=1)
    amplitude, phase = run(config)
    centre = torch.zeros(64, 64, dtype=torch.bool)
    centre[16:48, 16:48] = True
    assert bool((amplitude[..., ~centre] == 0).all()) and bool((phase[..., ~centre] == 0).all())
    assert bool((amplitude[..., centre] > 0).all()) and bool((amplitude < 1).all())
    assert bool((phase.abs() <= math.pi).all())


def test_border_branch_fills_the_border():
    amplitude, _ = run(ModelConfig(size_px=64, probe_big=True, n_filters_scale=1))
    border = torch.ones(64, 64, dtype=torch.bool)
    border[16:48, 16:48] = False
    assert bool((amplitude[..., border] != 0).any())


@pytest.mark.parametrize("scale", [1, 2])
def test_filter_scale_multiplies_every_conv_width(scale):
    generator = build_generator(ModelConfig(n_filters_scale=scale))
    first = generator.encoder[0].conv1
    assert first.out_channels == 32 * scale and first.in_channels == 1
