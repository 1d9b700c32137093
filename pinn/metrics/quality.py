"""Quality of a complex reconstruction against a known object: one flat dict of numbers.

Compared with the reference implementation's evaluation (docs/DESIGN.md §7.8; deviation 7 of
§8): PSNR uses the reference image's data range rather than 255; the phase is aligned by one
plane fitted to the phase *difference* (not a plane removed from each image separately) and
wrapped around the reference; phase PSNR and SSIM use the reference phase's own range rather
than a fixed ``2π``; FRC resolutions are normalised frequencies (cycles per pixel), not ring
indices. The reference's phase SSIM is available, labelled, as
``phase_ssim_compat``. Computation is in float64/complex128 NumPy.
"""

from __future__ import annotations

import numpy as np

from pinn.errors import DataError
from pinn.metrics._checks import (as_image, as_mask, check_int_at_least, check_min_size,
                                  check_same_shape)
from pinn.metrics.frc import frc
from pinn.metrics.phase import phase_difference_plane, remove_phase_ramp, wrap_phase
from pinn.metrics.registration import register_translation, shift_image
from pinn.metrics.similarity import psnr, ssim


def evaluate_reconstruction(recon: object, reference: object, mask: object = None, *,
                            register: bool = True, border_px: int = 2,
                            phase_ssim_compat: bool = False) -> dict[str, float]:
    """Amplitude and phase error metrics of ``recon`` against ``reference``.

    Steps:

    1. Crop both images (and the mask) to the bounding box of ``mask``.
    2. If ``register``: find the shift registering ``|recon|`` with ``|reference|``
       (:func:`register_translation`, 1/50 px), Fourier-shift ``recon`` by it
       (:func:`shift_image`, periodic), then crop ``border_px`` from every side of both
       images to drop the wrapped-around edge. Without registration nothing is cropped.
    3. Amplitude: ``|recon|`` times ``amplitude_scale = mean|reference| / mean|recon|``; MAE,
       MSE, PSNR and SSIM with ``R = max - min`` of ``|reference|``; FRC.
    4. Phase: :func:`align_phase` (plane and offset of the phase difference, fitted over the
       mask weighted by ``|reference|``), then the recon phase is wrapped into
       ``(-π, π]`` around the reference phase ``angle(reference)``; MAE, MSE, PSNR and SSIM
       with ``R = max - min`` of the reference phase; FRC.

    All metrics are over the whole evaluated rectangle; the mask selects the rectangle and
    the pixels the phase plane is fitted to.

    Args:
        recon, reference: ``(H, W)`` complex on the same pixel grid (NumPy or torch).
        mask: ``(H, W)`` bool, the well-covered pixels (default every pixel).
        register: register and shift ``recon`` first (step 2).
        border_px: pixels cropped from each side after the shift (integer >= 0).
        phase_ssim_compat: also report ``phase_ssim_compat``, the reference implementation's
            phase SSIM: a least-squares plane removed from each phase image separately, no
            wrapping, SSIM of ``(φ + π) / (2π)`` with ``data_range = 1``. Because the range
            is fixed at 1 while object phases span a small part of it, nearly constant
            phases score high (an untrained network about 0.84): never a headline figure.

    Returns:
        A flat dict of Python floats: ``amplitude_ssim``, ``phase_ssim``, ``amplitude_psnr``,
        ``phase_psnr`` (dB; ``inf`` for identical images), ``amplitude_mae``,
        ``amplitude_mse``, ``phase_mae`` (rad), ``phase_mse`` (rad²),
        ``amplitude_frc50``, ``amplitude_frc_half_bit``, ``phase_frc50``,
        ``phase_frc_half_bit`` (normalised frequency in cycles per pixel, 0.5 = Nyquist,
        higher is better), ``amplitude_correlation``, ``phase_correlation`` (Pearson's
        correlation coefficient of the compared images, in [-1, 1]), ``shift_y_px``, ``shift_x_px`` (the shift applied to ``recon``,
        content moving down/right), ``global_phase_rad`` (the phase added to ``recon`` at the
        centre of the evaluated rectangle, in ``(-π, π]``), ``amplitude_scale`` (the factor
        applied to ``|recon|``), ``n_pixels`` (pixels in the evaluated rectangle), and
        ``phase_ssim_compat`` if asked for. PSNR, SSIM and correlation are ``nan`` when the
        reference
        image (amplitude or phase) is constant (its range at most 1e-6 of its largest
        magnitude, as the amplitude of a pure phase object), having no data range then.

    Raises:
        DataError: on malformed, non-finite or differently shaped inputs, an empty mask, an
            evaluated region smaller than 7×7, a zero reconstruction, or a reference that is
            zero on the whole mask.
        ConfigError: if ``border_px`` is not an integer >= 0.
    """
    rec = as_image("recon", recon).astype(np.complex128)
    ref = as_image("reference", reference).astype(np.complex128)
    check_same_shape("recon", rec, "reference", ref)
    selected = as_mask("mask", mask, rec.shape)
    border = check_int_at_least("border_px", border_px, 0)

    rows = np.flatnonzero(selected.any(axis=1))
    cols = np.flatnonzero(selected.any(axis=0))
    box = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    rec, ref, selected = rec[box], ref[box], selected[box]  # (h, w) each
    check_min_size("the bounding box of mask", rec.shape,
                   " (SSIM needs one 7x7 window); enlarge the mask")

    shift = (0.0, 0.0)
    if register:
        shift = register_translation(np.abs(ref), np.abs(rec))
        rec = shift_image(rec, shift)
        inner = np.s_[border:rec.shape[0] - border, border:rec.shape[1] - border]
        rec, ref, selected = rec[inner], ref[inner], selected[inner]  # (h - 2b, w - 2b)
        check_min_size(f"the bounding box of mask less border_px={border} on each side",
                       rec.shape, "; enlarge the mask or reduce border_px")
        if not selected.any():
            raise DataError(f"mask selects no pixels once border_px={border} is cropped "
                            "from each side; enlarge the mask or reduce border_px")

    amp_ref = np.abs(ref)
    amp_rec = np.abs(rec)
    if amp_rec.mean() == 0:
        raise DataError("recon is zero over the evaluated region; nothing to compare")
    scale = amp_ref.mean() / amp_rec.mean()
    amp_rec = amp_rec * scale

    plane, offset = phase_difference_plane(rec, ref, selected)
    phase_ref = np.angle(ref)
    phase_rec = phase_ref + wrap_phase(np.angle(rec * np.exp(-1j * plane)) - phase_ref)

    metrics = {}
    for name, truth, estimate in (("amplitude", amp_ref, amp_rec),
                                  ("phase", phase_ref, phase_rec)):
        metrics.update(_image_metrics(name, truth, estimate))
    metrics.update(
        shift_y_px=shift[0],
        shift_x_px=shift[1],
        global_phase_rad=float(wrap_phase(-offset)),
        amplitude_scale=float(scale),
        n_pixels=float(rec.size),
    )
    if phase_ssim_compat:
        metrics["phase_ssim_compat"] = ssim(_unit_interval(remove_phase_ramp(phase_ref)),
                                            _unit_interval(remove_phase_ramp(np.angle(rec))),
                                            1.0)
    return metrics


# Relative spread below which an image is constant up to float32 rounding (|exp(iφ)| of a
# complex64 pure phase object varies by about 2e-7).
_CONSTANT_RTOL = 1e-6


def _image_metrics(name: str, truth: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """MAE, MSE, PSNR, SSIM (with the truth's data range; nan if it is constant), Pearson's
    correlation (nan if either image is constant) and FRC resolutions, keyed ``{name}_…``."""
    error = estimate - truth
    data_range = float(truth.max() - truth.min())
    if data_range <= _CONSTANT_RTOL * np.abs(truth).max():
        data_range = 0.0  # constant up to rounding, as |exp(iφ)| of a pure phase object
    curve = frc(truth, estimate, taper=True)
    spread = float(np.std(truth) * np.std(estimate))
    correlation = (float(np.mean((truth - truth.mean()) * (estimate - estimate.mean())) / spread)
                   if data_range > 0 and spread > 0 else float("nan"))
    return {
        f"{name}_correlation": correlation,
        f"{name}_mae": float(np.mean(np.abs(error))),
        f"{name}_mse": float(np.mean(error**2)),
        f"{name}_psnr": psnr(truth, estimate, data_range) if data_range > 0 else float("nan"),
        f"{name}_ssim": ssim(truth, estimate, data_range) if data_range > 0 else float("nan"),
        f"{name}_frc50": curve.resolution_0p5,
        f"{name}_frc_half_bit": curve.resolution_half_bit,
    }


def _unit_interval(phase: np.ndarray) -> np.ndarray:
    """The reference implementation's map of a phase onto ``[0, 1]``: ``(φ + π) / (2π)``."""
    return (phase + np.pi) / (2 * np.pi)
