"""The reference's diffraction scaling chain: normalisation factor, intensity scale, dose.

The model's inputs and targets are ``intensity_scale * factor * diffraction``
(docs/DESIGN.md §7.3; units in §4):

- ``factor = normalization_factor(diffraction, indices)`` makes the mean total squared
  amplitude of the grouped patterns ``(N/2)**2``, whatever the stored scale;
- ``intensity_scale(nphotons, N) = sqrt(nphotons) / (N/2)`` then makes it ``nphotons``:
  the scaled amplitudes are in photon units (their squares are counts), with on average
  ``nphotons`` counts per pattern.

When the diffraction is ``sqrt(counts)`` and ``nphotons`` is the measured mean total count of
the grouped patterns (what :func:`resolve_nphotons` returns for counts data by default), the
product ``intensity_scale * factor`` is 1 up to float32 rounding: the model sees
``sqrt(counts)`` itself, and the Poisson likelihood is evaluated on the real counts. For
amplitudes of unknown scale the reference's default dose 1e9 applies.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn.data import _checks
from pinn.data.scan import ScanData, pattern_energy
from pinn.errors import ConfigError, DataError

DEFAULT_NPHOTONS = 1e9  # the reference's default dose (both of its config systems)


def normalization_factor(diffraction: torch.Tensor, indices: torch.Tensor) -> float:
    """``float32(sqrt((N/2)**2 / mean_{g,c} sum_xy diffraction[indices[g, c]]**2))``.

    The mean runs over all ``G * C`` grouped patterns, so a pattern used by several groups
    counts several times (as in the reference); squares and sums are float64, the result is
    rounded to float32. After multiplying the grouped patterns by it, their mean total squared
    amplitude is ``(N/2)**2``. This is :func:`normalization_from_energy` of
    :func:`pinn.data.scan.pattern_energy` (the one formula, shared with streamed scans).

    Args:
        diffraction: ``(M, N, N)`` real amplitudes (any scale).
        indices: ``(G, C)`` (or any shape) int64 indices into the M patterns, e.g.
            ``Groups.indices``.

    Returns:
        The factor as a Python float that is exactly a float32 value.

    Raises:
        DataError: bad shapes, indices out of range, or every grouped pattern is zero.
    """
    diffraction = _checks.as_tensor("diffraction", diffraction)
    _checks.check_real("diffraction", diffraction)
    if diffraction.dim() != 3:
        raise DataError(f"diffraction has shape {tuple(diffraction.shape)}; expected (M, N, N)")
    _grouped_indices(indices, diffraction.shape[0])  # refuse bad indices before the energy pass
    return normalization_from_energy(pattern_energy(diffraction), indices, diffraction.shape[-1])


def normalization_from_energy(
    energy: torch.Tensor, indices: torch.Tensor, N: int,  # noqa: N803 - N is the patch size
) -> float:
    """The normalisation factor from per-pattern energies:
    ``float32(sqrt((N/2)**2 / mean(energy[indices])))``.

    Args:
        energy: ``(M,)`` float64 ``sum_xy amplitude**2`` of each pattern
            (:func:`pinn.data.scan.pattern_energy`, or ``ScanSource.pattern_energy()``).
        indices: ``(G, C)`` (or any shape) int64 indices into the M patterns; duplicates count
            as often as they occur.
        N: pattern side in pixels.

    Returns:
        The factor as a Python float that is exactly a float32 value.

    Raises:
        DataError: ``energy`` not ``(M,)`` real, indices empty or out of range, or every
            grouped pattern is zero.
    """
    energy = _checks.as_tensor("energy", energy)
    _checks.check_real("energy", energy)
    if energy.dim() != 1:
        raise DataError(f"energy has shape {tuple(energy.shape)}; expected (M,), one value per "
                        "pattern")
    index = _grouped_indices(indices, energy.shape[0])
    mean = energy.to(torch.float64)[index].mean()
    if not float(mean) > 0:
        raise DataError("every grouped diffraction pattern is zero; the data cannot be "
                        "normalised (check the file holds the measured patterns)")
    half = int(N) / 2
    return float(np.float32(math.sqrt(half * half / float(mean))))


def _grouped_indices(indices: torch.Tensor, m: int) -> torch.Tensor:
    index = _checks.as_tensor("indices", indices)
    index = _checks.check_integral("indices", index).flatten()
    if index.numel() == 0 or bool((index < 0).any() or (index >= m).any()):
        raise DataError(f"indices must be a non-empty set of pattern indices in [0, {m}); "
                        "build them with group_positions on this scan's positions")
    return index


def intensity_scale(nphotons: float, N: int) -> float:  # noqa: N803 - N is the patch size
    """The reference's closed-form intensity scale ``sqrt(nphotons) / (N/2)``.

    Args:
        nphotons: mean total counts per pattern the scaled amplitudes should carry (> 0).
        N: pattern side in pixels.

    Returns:
        Python float (float64).

    Raises:
        ConfigError: ``nphotons`` not a finite positive number or ``N`` not a positive int.
    """
    _check_nphotons(nphotons)
    if isinstance(N, bool) or int(N) != N or N < 1:
        raise ConfigError(f"N must be a positive int (the pattern size), got {N!r}")
    return math.sqrt(float(nphotons)) / (int(N) / 2)


def resolve_nphotons(scan: ScanData, indices: torch.Tensor, nphotons: float | None = None
                     ) -> float:
    """The dose used for scaling: ``nphotons`` if given, else measured, else 1e9.

    For counts data (``scan.counts``) the measured dose is the mean total count over the
    grouped patterns ``indices`` (duplicates counted, the same average
    :func:`normalization_factor` takes), so that the scaled amplitudes equal ``sqrt(counts)``.
    For amplitudes of unknown scale it is the reference's default, 1e9.

    Raises:
        ConfigError: a given ``nphotons`` is not finite and positive.
    """
    if nphotons is not None:
        _check_nphotons(nphotons)
        return float(nphotons)
    if scan.counts:
        index = torch.as_tensor(indices).flatten()
        return float(pattern_energy(scan.diffraction)[index].mean())
    return DEFAULT_NPHOTONS


def _check_nphotons(nphotons: object) -> None:
    try:
        value = float(nphotons)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"nphotons must be a positive number, got {nphotons!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"nphotons must be finite and > 0 (mean total counts per pattern), "
                          f"got {nphotons!r}")
