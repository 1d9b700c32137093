"""The engine trains the real PtychoPINN (N=64, gridsize 1) on a few synthetic groups: the loss
goes down, and under bf16 autocast the network runs in bfloat16 while the physics stays float32.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pinn import ops
from pinn.config import ModelConfig, TrainingConfig
from pinn.engine.seed import seed_everything
from pinn.engine.train import train
from pinn.model.loss import PtychoLoss
from pinn.model.ptychopinn import build_model

N = 64
PHOTONS = 1e4


def smooth_field(generator: torch.Generator, n_groups: int) -> torch.Tensor:
    """``(B, N, N)`` random smooth fields in [0, 1] (white noise, Gaussian blur, rescaled)."""
    noise = torch.rand(n_groups, 1, N // 4, N // 4, generator=generator)
    field = F.interpolate(noise, size=(N, N), mode="bicubic", align_corners=False)[:, 0]
    low = field.amin(dim=(-2, -1), keepdim=True)
    high = field.amax(dim=(-2, -1), keepdim=True)
    return (field - low) / (high - low)


class SyntheticGroups:
    """Groups of one pattern: smooth object patches times the default probe, diffracted,
    scaled to ``PHOTONS`` mean counts per pattern and Poisson-sampled."""

    def __init__(self, n_groups: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        amplitude = 0.5 + 0.5 * smooth_field(generator, n_groups)
        phase = 0.5 * (smooth_field(generator, n_groups) - 0.5)
        patches = torch.polar(amplitude, phase)[:, None]  # (B, 1, N, N) complex64
        probe = ops.normalize_probe(ops.default_probe(N))
        diffraction = ops.diffract(ops.illuminate(patches, probe))  # (B, 1, N, N)
        scale = math.sqrt(PHOTONS / float(diffraction.square().sum(dim=(-2, -1)).mean()))
        counts = torch.poisson((scale * diffraction).square(), generator=generator)
        self.amplitude = counts.sqrt()  # (B, 1, N, N) photon units
        self.offsets = torch.zeros(n_groups, 1, 2)  # (B, 1, 2)
        # The reference's normalisation: sqrt(photons) / (N / 2).
        self.intensity_scale = math.sqrt(PHOTONS) / (N / 2)

    def __len__(self) -> int:
        return len(self.amplitude)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"amplitude": self.amplitude[indices], "offsets": self.offsets[indices]}


def make_ptychopinn(intensity_scale: float):
    seed_everything(0, True)
    return build_model(ModelConfig(size_px=N, gridsize=1, n_filters_scale=1),
                       intensity_scale=intensity_scale)


def test_synthetic_data_is_as_intended():
    data = SyntheticGroups(4, seed=0)
    assert data.amplitude.shape == (4, 1, N, N)
    total = data.amplitude.square().sum(dim=(-2, -1))
    assert float(total.mean()) == pytest.approx(PHOTONS, rel=0.05)
    counts = data.amplitude.square()
    torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-2)  # Poisson counts
    assert float(counts.max()) > 100  # a bright centre, not a flat field


def test_ptychopinn_loss_goes_down_in_two_epochs():
    train_set, val_set = SyntheticGroups(8, seed=0), SyntheticGroups(2, seed=1)
    model = make_ptychopinn(train_set.intensity_scale)
    config = TrainingConfig(epochs=2, batch_size=2, learning_rate=1e-3, seed=0,
                            early_stopping_patience=0)
    result = train(model, PtychoLoss(), train_set, val_set, config, verbose=False)
    first, last = result.history
    for entry in result.history:
        assert {"train_loss", "train_nll", "train_deviance", "val_loss",
                "val_deviance"} <= set(entry)
        assert all(math.isfinite(v) for v in entry.values())
    assert last["train_loss"] < first["train_loss"]
    assert last["train_deviance"] < first["train_deviance"]


def test_ptychopinn_bf16_network_with_float32_physics():
    data = SyntheticGroups(2, seed=0)
    model = make_ptychopinn(data.intensity_scale)
    seen = {}

    def record_conv_dtype(module, inputs, output):
        seen["conv"] = output.dtype

    model.generator.apply(lambda m: isinstance(m, torch.nn.Conv2d)
                          and m.register_forward_hook(record_conv_dtype))

    def loss_fn(net, batch):
        out = net(batch["amplitude"], batch["offsets"])
        seen.update(amplitude=out.amplitude.dtype, intensity=out.intensity.dtype,
                    object=out.object.dtype)
        return PtychoLoss()(net, batch)

    config = TrainingConfig(epochs=1, batch_size=2, precision="bf16", seed=0)
    result = train(model, loss_fn, data, None, config, verbose=False)
    assert seen == {"conv": torch.bfloat16, "amplitude": torch.float32,
                    "intensity": torch.float32, "object": torch.complex64}
    assert math.isfinite(result.history[0]["train_loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())
