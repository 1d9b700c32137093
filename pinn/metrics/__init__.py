"""Evaluation metrics of reconstructions: registration, phase alignment, PSNR, SSIM, FRC.

Conventions: images are 2-D ``(H, W)`` NumPy arrays or torch tensors, computed on in
float64/complex128 NumPy and returned as NumPy arrays or Python floats; shifts are
``(dy, dx)`` pixels with positive values moving content down/right; phases are radians;
frequencies are normalised (cycles per pixel, Nyquist = 0.5). Invalid inputs raise
:class:`pinn.errors.DataError`.
"""

from pinn.metrics.frc import FRCResult, frc
from pinn.metrics.phase import align_global_phase, align_phase, remove_phase_ramp
from pinn.metrics.quality import evaluate_reconstruction
from pinn.metrics.registration import register_translation, shift_image
from pinn.metrics.similarity import psnr, ssim

__all__ = [
    "FRCResult",
    "align_global_phase",
    "align_phase",
    "evaluate_reconstruction",
    "frc",
    "psnr",
    "register_translation",
    "remove_phase_ramp",
    "shift_image",
    "ssim",
]
