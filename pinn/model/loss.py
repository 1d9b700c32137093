"""The training objective of PtychoPINN: a weighted Poisson NLL and amplitude MAE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pinn import ops


@dataclass(frozen=True)
class PtychoLoss:
    """``loss = nll_weight * mean(NLL) + mae_weight * mean(|A - A_meas|)`` (reference weights 1, 0).

    Called as ``loss_fn(model, batch)`` with ``batch = {"amplitude": (B, C, N, N) photon units,
    "offsets": (B, C, 2)}``; returns the scalar loss and metrics: ``nll`` (the reference's loss,
    which omits the Stirling term, so its value depends on the dose), ``mae`` and ``deviance``
    (Poisson deviance per pixel, about 1 at the shot-noise floor and comparable across data).
    """

    nll_weight: float = 1.0
    mae_weight: float = 0.0

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        measured = batch["amplitude"]
        out = model(measured, batch["offsets"])
        measured = measured.float()
        counts = measured.square()
        nll = ops.poisson_nll(out.intensity, counts).mean()
        mae = ops.amplitude_mae(out.amplitude, measured).mean()
        loss = self.nll_weight * nll + self.mae_weight * mae
        with torch.no_grad():
            deviance = ops.poisson_deviance(out.intensity.detach(), counts).mean()
        return loss, {"nll": nll.detach(), "mae": mae.detach(), "deviance": deviance}
