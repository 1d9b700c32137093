"""Data-fit terms: the reference's Poisson NLL, the Poisson deviance and the amplitude MAE."""

from __future__ import annotations

import torch

from pinn.ops._checks import check_tensor
from pinn.ops._precision import full_precision, no_autocast


def _pair(pred: torch.Tensor, measured: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("pred", pred)
    check_tensor("measured", measured)
    if pred.is_complex() or measured.is_complex():
        raise TypeError("intensities and amplitudes must be real; got a complex tensor")
    return full_precision(pred), full_precision(measured)


def _xlogy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x * log(y)`` with 0 where ``x == 0``, and a finite gradient there (no 0 * inf)."""
    safe_y = torch.where(x == 0, torch.ones_like(y), y)
    return torch.where(x == 0, torch.zeros_like(y), x * torch.log(safe_y))


def poisson_nll(pred_intensity: torch.Tensor, measured_intensity: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson negative log-likelihood without the Stirling term: ``pred - k*log(pred)``.

    The TensorFlow reference's ``negloglik`` (``log_poisson_loss`` with
    ``compute_full_loss=False``). It is not >= 0 and its scale depends on the dose, so it cannot
    be compared across datasets; use :func:`poisson_deviance` for that. Where
    ``measured == 0`` the term is ``pred`` (the reference would give NaN for ``pred == 0``).

    Args:
        pred_intensity: ``(...)`` predicted counts, > 0.
        measured_intensity: ``(...)`` measured counts (broadcastable).

    Returns:
        ``(...)`` float32 (float64 for double input); reduce it yourself (the reference takes
        the mean over all elements).
    """
    pred, measured = _pair(pred_intensity, measured_intensity)
    with no_autocast(pred.device):
        return pred - _xlogy(measured, pred)


def poisson_deviance(pred_intensity: torch.Tensor, measured_intensity: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson deviance ``2 * (pred - k + k*log(k/pred))`` (``0*log 0 = 0``).

    Zero for a perfect fit and about 1 per pixel at the shot-noise floor when counts are not
    tiny: a dose-independent measure of fit, unlike :func:`poisson_nll`.

    Returns:
        ``(...)`` float32 (float64 for double input), >= 0.
    """
    pred, measured = _pair(pred_intensity, measured_intensity)
    with no_autocast(pred.device):
        # k*log(pred/k) = k*log1p((pred - k)/k) when pred and k are close: the difference is
        # exact there, so large counts do not lose the result to rounding of k*log(k) -
        # k*log(pred) (in float32 that gave -8 at k = 3e6). Far apart (pred << k) log1p would
        # round to log1p(-1) = -inf, so the direct form is used; the clamp removes last-ulp
        # negatives.
        excess = pred - measured
        safe_measured = torch.where(measured == 0, torch.ones_like(measured), measured)
        ratio = excess / safe_measured
        close = ratio.abs() < 0.5
        safe_pred = torch.where(pred > 0, pred, torch.ones_like(pred))
        direct = torch.where(pred > 0, torch.log(safe_pred) - torch.log(safe_measured),
                             torch.full_like(pred, -float("inf")))  # log(pred / k)
        near = torch.log1p(torch.where(close, ratio, torch.zeros_like(ratio)))  # log(pred / k)
        log_term = torch.where(measured == 0, torch.zeros_like(excess),
                               measured * torch.where(close, near, direct))
        return (2 * (excess - log_term)).clamp_min(0)


def amplitude_mae(pred_amplitude: torch.Tensor, measured_amplitude: torch.Tensor) -> torch.Tensor:
    """Elementwise absolute amplitude error ``|pred - measured|`` (the reference's MAE term
    before its mean). Returns ``(...)`` float32 (float64 for double input)."""
    pred, measured = _pair(pred_amplitude, measured_amplitude)
    with no_autocast(pred.device):
        return (pred - measured).abs()
