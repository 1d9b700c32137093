"""The metrics' input validation: one-line DataError/ConfigError messages naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _metrics_helpers import make_object
from pinn.errors import ConfigError, DataError
from pinn.metrics import (align_global_phase, align_phase, evaluate_reconstruction, frc, psnr,
                          register_translation, remove_phase_ramp, shift_image, ssim)


# ---------------------------------------------------------------- validation

GOOD = np.ones((10, 10))
NAN = np.ones((10, 10))
NAN[3, 4] = np.nan
SMALL = np.ones((6, 10))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: register_translation(GOOD, np.ones((10, 11))), "moving has shape"),
        (lambda: register_translation(GOOD, NAN), r"moving holds 1 NaN.*\(3, 4\)"),
        (lambda: register_translation(np.ones(10), GOOD), "reference has shape"),
        (lambda: register_translation(np.ones((0, 3)), GOOD), "reference is empty"),
        (lambda: register_translation(GOOD > 0, GOOD), "reference has dtype bool"),
        (lambda: register_translation(torch.ones(10, 10) > 0, GOOD), "reference has dtype"),
        (lambda: register_translation(np.full((10, 10), "a"), GOOD), "reference has dtype"),
        (lambda: shift_image(GOOD, (1.0, 2.0, 3.0)), "shift is"),
        (lambda: shift_image(GOOD, (np.nan, 2.0)), "shift is"),
        (lambda: shift_image(NAN, (1.0, 2.0)), "image holds"),
        (lambda: psnr(GOOD, GOOD + 1j), "test is complex"),
        (lambda: psnr(GOOD, GOOD), "reference is constant"),
        (lambda: psnr(GOOD, GOOD, data_range=0.0), "data_range"),
        (lambda: psnr(GOOD, np.ones((10, 9))), "test has shape"),
        (lambda: ssim(SMALL, SMALL, 1.0), r"reference has shape \(6, 10\).*7x7"),
        (lambda: ssim(GOOD, np.ones((9, 10)), 1.0), "test has shape"),
        (lambda: ssim(GOOD, GOOD, -1.0), "data_range"),
        (lambda: ssim(GOOD, GOOD, float("nan")), "data_range"),
        (lambda: ssim(GOOD, GOOD, True), "data_range"),
        (lambda: ssim(GOOD, NAN, 1.0), "test holds"),
        (lambda: frc(GOOD, SMALL), "image2 has shape"),
        (lambda: frc(NAN, GOOD), "image1 holds"),
        (lambda: remove_phase_ramp(GOOD + 1j), "phase is complex"),
        (lambda: remove_phase_ramp(GOOD, np.zeros((10, 10), bool)), "mask selects no"),
        (lambda: align_phase(GOOD, GOOD, np.ones((10, 9), bool)), "mask has shape"),
        (lambda: align_phase(GOOD, GOOD, np.full((10, 10), 0.5)), "mask has dtype"),
        (lambda: align_phase(GOOD, 0 * GOOD), "reference is zero"),
        (lambda: align_global_phase(GOOD, np.ones((9, 10))), "reference has shape"),
        (lambda: evaluate_reconstruction(GOOD, np.ones((10, 11))), "reference has shape"),
        (lambda: evaluate_reconstruction(NAN, GOOD), "recon holds"),
        (lambda: evaluate_reconstruction(GOOD, GOOD, np.zeros((10, 10), bool)),
         "mask selects no"),
        (lambda: evaluate_reconstruction(GOOD, GOOD, _box(10, 2, 8)), "bounding box of mask"),
        (lambda: evaluate_reconstruction(np.ones((14, 14)), np.ones((14, 14)), border_px=4),
         "border_px=4"),
        (lambda: evaluate_reconstruction(0 * GOOD, GOOD, register=False), "recon is zero"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()


def _box(n, start, stop):
    mask = np.zeros((n, n), bool)
    mask[start:stop, start:stop] = True
    return mask


@pytest.mark.parametrize(
    "call",
    [
        lambda: register_translation(GOOD, GOOD, upsample_factor=0),
        lambda: register_translation(GOOD, GOOD, upsample_factor=2.5),
        lambda: evaluate_reconstruction(GOOD, GOOD, border_px=-1),
    ],
)
def test_invalid_options_raise_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_mask_cropped_away_by_the_border_is_reported():
    reference = make_object((20, 20))
    mask = np.zeros((20, 20), bool)
    mask[0, 0] = mask[19, 19] = True  # a full bounding box, but only corner pixels
    with pytest.raises(DataError, match="once border_px=2 is cropped"):
        evaluate_reconstruction(reference, reference, mask)
