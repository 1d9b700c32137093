"""Tests of pinn.metrics.similarity: PSNR and SSIM against known values and a loop oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pinn.metrics import psnr, ssim


# ---------------------------------------------------------------- PSNR


def test_psnr_known_values_use_the_data_range_not_255():
    reference = np.linspace(0, 1, 64).reshape(8, 8)
    test = reference + 0.1  # MSE 0.01, data range 1
    assert psnr(reference, test) == pytest.approx(20.0, abs=1e-12)
    assert psnr(reference, test, data_range=2.0) == pytest.approx(10 * math.log10(400),
                                                                  abs=1e-12)
    assert psnr(reference, test) != pytest.approx(10 * math.log10(255**2 / 0.01))
    assert psnr(reference, reference) == math.inf


# ---------------------------------------------------------------- SSIM


def ssim_oracle(x, y, data_range):
    """scikit-image's recipe written out: a 7x7 window around every pixel (edges mirrored
    as scipy's 'reflect'), two-pass sample statistics, then crop 3 px and average."""
    xp = np.pad(x, 3, mode="symmetric")
    yp = np.pad(y, 3, mode="symmetric")
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ssim_map = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            wx = xp[i:i + 7, j:j + 7]
            wy = yp[i:i + 7, j:j + 7]
            mx, my = wx.sum() / 49, wy.sum() / 49
            vx = ((wx - mx) ** 2).sum() / 48
            vy = ((wy - my) ** 2).sum() / 48
            cov = ((wx - mx) * (wy - my)).sum() / 48
            ssim_map[i, j] = ((2 * mx * my + c1) * (2 * cov + c2)
                              / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return ssim_map[3:-3, 3:-3].mean()


@given(height=st.integers(7, 13), width=st.integers(7, 13), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1e-2, 1.0, 255.0]), similarity=st.floats(-1, 1),
       range_factor=st.sampled_from([0.3, 1.0, 4.0]))
def test_ssim_matches_the_loop_oracle(height, width, seed, scale, similarity, range_factor):
    rng = np.random.default_rng(seed)
    x = scale * rng.random((height, width))
    y = similarity * x + scale * 0.5 * rng.random((height, width))
    data_range = range_factor * scale
    assert abs(ssim(x, y, data_range) - ssim_oracle(x, y, data_range)) < 1e-10


def test_ssim_identical_symmetric_and_bounded():
    rng = np.random.default_rng(8)
    x = rng.random((20, 24))
    y = 0.5 * x + rng.random((20, 24))
    assert ssim(x, x, 1.0) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y, 1.0) == ssim(y, x, 1.0)
    assert -1 <= ssim(x, 1 - x, 1.0) < -0.9  # anti-correlated, equal local means
    assert ssim(torch.from_numpy(x), torch.from_numpy(y), 1.0) == ssim(x, y, 1.0)
