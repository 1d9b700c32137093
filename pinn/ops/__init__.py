"""Pure, differentiable physics ops of PtychoPINN, one per file.

Conventions: images ``(..., H, W)``; positions and shifts ``(..., 2)`` as ``(y, x)`` pixels;
a patch's centre is its pixel ``(N//2, N//2)``; complex fields are complex64. Every op computes
in float32/complex64 (float64/complex128 for double input), also under autocast. No op holds
state or draws random numbers.
"""

from pinn.ops.blur import gaussian_blur
from pinn.ops.crop import center_crop, center_pad
from pinn.ops.diffract import diffract
from pinn.ops.disk_mask import disk_mask
from pinn.ops.extract_patches import extract_patches
from pinn.ops.fourier_shift import fourier_shift
from pinn.ops.gather_windows import gather_windows
from pinn.ops.illuminate import illuminate
from pinn.ops.likelihood import amplitude_mae, poisson_deviance, poisson_nll
from pinn.ops.modes import (add_probe_modes, dominant_mode, far_field_amplitude,
                            far_field_intensity, mode_powers, orthogonalize_modes)
from pinn.ops.probe import default_probe, normalize_probe, normalize_probe_modes
from pinn.ops.project import project_amplitudes
from pinn.ops.ptycho_intensity import ptycho_intensity
from pinn.ops.reassemble_patches import reassemble_patches
from pinn.ops.stitch import normalize_stitch, stitch, stitch_sums
from pinn.ops.synchronize import phase_offsets
from pinn.ops.translate import translate

__all__ = [
    "add_probe_modes",
    "amplitude_mae",
    "center_crop",
    "center_pad",
    "default_probe",
    "diffract",
    "disk_mask",
    "dominant_mode",
    "extract_patches",
    "far_field_amplitude",
    "far_field_intensity",
    "fourier_shift",
    "gather_windows",
    "gaussian_blur",
    "illuminate",
    "mode_powers",
    "normalize_probe",
    "normalize_probe_modes",
    "normalize_stitch",
    "orthogonalize_modes",
    "phase_offsets",
    "poisson_deviance",
    "poisson_nll",
    "project_amplitudes",
    "ptycho_intensity",
    "reassemble_patches",
    "stitch",
    "stitch_sums",
    "translate",
]
