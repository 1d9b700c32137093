"""Tests of pinn.model.loss: PtychoLoss is the weighted sum of the Poisson NLL and the amplitude
MAE of the model's prediction, and reports the Poisson deviance alongside."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pinn import ops
from pinn.model import ModelOutput, PtychoLoss


class Fixed(nn.Module):
    """Predicts a given amplitude whatever the input."""

    def __init__(self, amplitude: torch.Tensor) -> None:
        super().__init__()
        self.amplitude = nn.Parameter(amplitude.clone())

    def forward(self, measured, offsets):
        obj = torch.zeros(measured.shape[0], 4, 4, dtype=torch.complex64)
        return ModelOutput(obj, self.amplitude, self.amplitude.square())


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((2, 1, 8, 8), 20.0), generator=gen)
    return {"amplitude": counts.sqrt(), "offsets": torch.zeros(2, 1, 2)}


@pytest.mark.parametrize(("nll_weight", "mae_weight"), [(1.0, 0.0), (0.5, 2.0), (0.0, 1.0)])
def test_loss_is_the_weighted_sum_of_its_terms(nll_weight, mae_weight):
    data = batch()
    predicted = torch.full((2, 1, 8, 8), 4.0)
    loss, metrics = PtychoLoss(nll_weight, mae_weight)(Fixed(predicted), data)
    counts = data["amplitude"].square()
    nll = ops.poisson_nll(predicted.square(), counts).mean()
    mae = ops.amplitude_mae(predicted, data["amplitude"]).mean()
    torch.testing.assert_close(metrics["nll"], nll)
    torch.testing.assert_close(metrics["mae"], mae)
    torch.testing.assert_close(loss, nll_weight * nll + mae_weight * mae)
    torch.testing.assert_close(metrics["deviance"],
                               ops.poisson_deviance(predicted.square(), counts).mean())


def test_metrics_are_detached_and_the_loss_is_differentiable():
    model = Fixed(torch.full((2, 1, 8, 8), 4.0))
    loss, metrics = PtychoLoss(1.0, 1.0)(model, batch())
    loss.backward()
    assert model.amplitude.grad is not None and bool(model.amplitude.grad.abs().sum() > 0)
    assert not any(value.requires_grad for value in metrics.values())


def test_deviance_is_smallest_at_the_truth():
    """The deviance of the true mean is about 1 per pixel (shot noise), and any other constant
    prediction scores worse."""
    data = batch(seed=3)
    true_mean = torch.full((2, 1, 8, 8), 20.0).sqrt()
    _, at_truth = PtychoLoss()(Fixed(true_mean), data)
    assert 0.5 < float(at_truth["deviance"]) < 1.5
    for factor in (0.5, 2.0):
        _, off = PtychoLoss()(Fixed(true_mean * factor), data)
        assert float(off["deviance"]) > float(at_truth["deviance"])
