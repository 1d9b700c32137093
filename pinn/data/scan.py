"""One ptychographic scan in pinn's internal conventions.

:class:`ScanData` is what every reader and the simulator return and what grouping and the
dataset consume. Its conventions are fixed: diffraction is float32 *amplitude* with zero
frequency at the centre pixel ``(N//2, N//2)``; positions are float64 ``(y, x)`` object pixels
of each window's centre pixel ``N//2``. Readers convert from file conventions (counts,
corner zero frequency, corner positions, ``x``/``y`` coordinate vectors) before building one.

:class:`ScanSource` is the smaller contract that inference (:func:`pinn.reconstruct.reconstruct`)
needs: the positions, the probe and patterns read on demand. ScanData satisfies it from memory;
:class:`pinn.data.stream.NpzScanStream` reads the patterns from a file chunk by chunk, for
scans larger than memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from pinn.data import _checks
from pinn.errors import DataError
from pinn.ops.modes import dominant_mode

ENERGY_CHUNK = 4096  # patterns per float64 block in pattern_energy (see NpzScanStream)


@runtime_checkable
class ScanSource(Protocol):
    """What inference needs from a scan: geometry, probe, and patterns on demand.

    Attributes:
        N: side of every pattern (and of the probe), in pixels.
        n_scans: M, the number of patterns (scan points).
        positions: ``(M, 2)`` float64, ``(y, x)`` object pixel under each window's centre
            pixel ``N//2`` (as :attr:`ScanData.positions`).
        probe: ``(N, N)`` complex64 probe guess, or ``(K, N, N)`` incoherent probe modes.

    Methods:
        read(indices): ``indices`` ``(k,)`` int64 in ``[0, M)``, any order, repeats allowed ->
            ``(k, N, N)`` float32 diffraction amplitudes, zero frequency at pixel
            ``(N//2, N//2)``, row ``i`` the pattern ``indices[i]``. Memory is of the order of
            ``k`` patterns, whatever M. Raises DataError for out-of-range indices or (for
            sources that validate on read) bad stored values.
        pattern_energy(): ``(M,)`` float64 ``sum_xy amplitude**2`` per pattern (what
            :func:`pinn.data.normalize.normalization_from_energy` averages), equal bit for bit
            to :func:`pattern_energy` of the patterns held in memory.
    """

    @property
    def N(self) -> int: ...  # noqa: N802 - the patch size is called N everywhere

    @property
    def n_scans(self) -> int: ...

    @property
    def positions(self) -> torch.Tensor: ...

    @property
    def probe(self) -> torch.Tensor: ...

    def read(self, indices: torch.Tensor) -> torch.Tensor: ...

    def pattern_energy(self) -> torch.Tensor: ...


def check_read_indices(indices: object, m: int) -> torch.Tensor:
    """``indices`` as a flat ``(k,)`` int64 tensor of pattern numbers in ``[0, m)``.

    Raises:
        DataError: non-integer values, or an index outside ``[0, m)`` (negative indices are
            refused: a source counts patterns from 0 only).
    """
    index = _checks.check_integral("indices", _checks.as_tensor("indices", indices)).flatten()
    if index.numel() and bool((index.min() < 0) | (index.max() >= m)):
        bad = index[(index < 0) | (index >= m)][0]
        raise DataError(f"read got pattern index {int(bad)} outside [0, {m}); pass indices of "
                        "existing scan points")
    return index


@dataclass(frozen=True, eq=False, repr=False)
class ScanData:
    """One scan: M diffraction patterns of size N x N, their positions and a probe.

    Fields (array-likes are converted to tensors of the stated dtype on construction):

    - ``diffraction``: ``(M, N, N)`` float32, diffraction **amplitude** (``sqrt`` of the
      intensity) with zero frequency at pixel ``(N//2, N//2)``; finite and >= 0.
    - ``positions``: ``(M, 2)`` float64, ``(y, x)`` = (row, column) object pixel on which each
      window's centre pixel ``(N//2, N//2)`` sits; finite.
    - ``probe``: ``(N, N)`` complex64, the probe guess as given (not normalised), or
      ``(K, N, N)`` complex64, K >= 1 mutually incoherent probe modes (a mixed-state probe,
      in the order given). A single-mode probe keeps the shape it was given, so
      :attr:`probe_modes` and :attr:`dominant_probe` are the ways to ask for one layout.
    - ``object``: ``(H, W)`` complex64 ground truth or guess, or None.
    - ``scan_index``: ``(M,)`` int64 (which scan each pattern came from); zeros when None.
    - ``positions_start``: ``(M, 2)`` float64 nominal (uncorrected) positions, or None.
    - ``counts``: True when ``diffraction**2`` are photon counts (measured or simulated with
      Poisson noise), so the dose can be measured (:attr:`measured_nphotons`).

    Raises:
        DataError: a field has the wrong rank, shape, dtype (complex or non-numeric
        diffraction), non-finite values, negative amplitudes, or M == 0 / N == 0.
    """

    diffraction: torch.Tensor
    positions: torch.Tensor
    probe: torch.Tensor
    object: torch.Tensor | None = None
    scan_index: torch.Tensor | None = None
    positions_start: torch.Tensor | None = None
    counts: bool = field(default=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        diffraction = _checks.as_tensor("diffraction", self.diffraction)
        _checks.check_real("diffraction", diffraction, _checks.AMPLITUDE_HINT)
        if diffraction.dim() != 3 or diffraction.shape[1] != diffraction.shape[2]:
            raise DataError(f"diffraction has shape {tuple(diffraction.shape)}; expected "
                            "(M, N, N): M square patterns")
        _checks.check_nonempty("diffraction", diffraction)
        diffraction = diffraction.to(torch.float32)
        _checks.check_finite("diffraction", diffraction)
        _checks.check_nonnegative("diffraction", diffraction)
        m, n = diffraction.shape[0], diffraction.shape[1]
        set_(self, "diffraction", diffraction)

        set_(self, "positions", _coordinates("positions", self.positions, m))
        if self.positions_start is not None:
            set_(self, "positions_start", _coordinates("positions_start", self.positions_start, m))

        probe = _checks.check_probe("probe", _checks.as_tensor("probe", self.probe), n)
        set_(self, "probe", probe.to(torch.complex64))

        if self.object is not None:
            obj = _checks.as_tensor("object", self.object)
            if obj.dim() != 2 or obj.numel() == 0:
                raise DataError(f"object has shape {tuple(obj.shape)}; expected a non-empty "
                                "(H, W) image, or None")
            obj = obj.to(torch.complex64)
            _checks.check_finite("object", obj)
            set_(self, "object", obj)

        if self.scan_index is None:
            set_(self, "scan_index", torch.zeros(m, dtype=torch.int64))
        else:
            index = _checks.as_tensor("scan_index", self.scan_index)
            _checks.check_shape("scan_index", index, (m,), f"(M,) = ({m},), one per pattern")
            set_(self, "scan_index", _checks.check_integral("scan_index", index))
        if not isinstance(self.counts, bool):
            raise DataError(f"counts must be True or False, got {self.counts!r}")

    def __repr__(self) -> str:
        obj = None if self.object is None else tuple(self.object.shape)
        return (f"ScanData(M={self.n_scans}, N={self.N}, counts={self.counts}, object={obj}, "
                f"positions_start={self.positions_start is not None})")

    @property
    def n_scans(self) -> int:
        """M, the number of diffraction patterns (scan points)."""
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 - the patch size is called N everywhere in ptychography
        """N, the side of each pattern and of the probe, in pixels."""
        return int(self.diffraction.shape[-1])

    @property
    def probe_modes(self) -> torch.Tensor:
        """``(K, N, N)`` complex64: the probe's modes (a view; ``K = 1`` for an ``(N, N)``
        probe)."""
        return probe_modes(self.probe)

    @property
    def dominant_probe(self) -> torch.Tensor:
        """``(N, N)`` complex64: the probe's strongest mode (the probe itself when it has one
        mode; :func:`pinn.ops.dominant_mode`)."""
        return dominant_mode(self.probe)

    @property
    def measured_nphotons(self) -> float | None:
        """Mean total photon count per pattern, ``mean_m sum_xy diffraction**2`` (float64 sums).

        In photons (counts) per pattern, averaged over all M patterns. None when ``counts`` is
        False: then the amplitudes have an unknown scale.
        """
        if not self.counts:
            return None
        return float(pattern_energy(self.diffraction).mean())

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """The patterns ``indices`` (``(k,)`` int64 in ``[0, M)``, any order, repeats allowed)
        as ``(k, N, N)`` float32 amplitudes, zero frequency centred: ``diffraction[indices]``
        (:class:`ScanSource`). Raises DataError for indices out of range."""
        return self.diffraction[check_read_indices(indices, self.n_scans)]

    def pattern_energy(self) -> torch.Tensor:
        """``(M,)`` float64 ``sum_xy diffraction**2`` per pattern (:func:`pattern_energy`;
        :class:`ScanSource`)."""
        return pattern_energy(self.diffraction)

    def select(self, indices: torch.Tensor | list[int]) -> ScanData:
        """A new ScanData with the scan points ``indices`` ((K,) int64 or bool mask of length M).

        The probe, the object and ``counts`` are shared. Raises DataError for an empty or
        out-of-range selection.
        """
        index = torch.as_tensor(indices)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.to(torch.int64).flatten()
        if index.numel() == 0:
            raise DataError("select got no indices; keep at least one scan point")
        if bool((index < -self.n_scans).any() or (index >= self.n_scans).any()):
            raise DataError(f"select got indices outside [0, {self.n_scans}); "
                            "pass indices of existing scan points")
        return ScanData(
            diffraction=self.diffraction[index],
            positions=self.positions[index],
            probe=self.probe,
            object=self.object,
            scan_index=self.scan_index[index],
            positions_start=None if self.positions_start is None else self.positions_start[index],
            counts=self.counts,
        )


def probe_modes(probe: torch.Tensor) -> torch.Tensor:
    """A probe ``(N, N)`` or ``(K, N, N)`` as ``(K, N, N)`` modes (a view, K = 1 for
    ``(N, N)``)."""
    return probe[None] if probe.dim() == 2 else probe


def pattern_energy(diffraction: torch.Tensor, chunk: int = ENERGY_CHUNK) -> torch.Tensor:
    """``sum_xy diffraction**2`` per pattern, in float64, without a float64 copy of the stack.

    Args:
        diffraction: ``(M, N, N)`` real amplitudes.
        chunk: patterns per float64 block (bounds the temporary memory).

    Returns:
        ``(M,)`` float64 (total counts per pattern when the amplitudes are ``sqrt(counts)``).
    """
    parts = [block.to(torch.float64).square().sum(dim=(-2, -1))
             for block in diffraction.split(chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def sqrt_counts(counts: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Amplitude ``sqrt(counts)`` as float32, correctly rounded.

    The root is taken in float64 and rounded once to float32 (torch's float32 ``sqrt`` on CPU
    can be one ulp off), block by block to bound the temporary memory.

    Args:
        counts: ``(M, ...)`` real, >= 0.

    Returns:
        Same shape, float32.
    """
    out = torch.empty(counts.shape, dtype=torch.float32)
    for block, target in zip(counts.split(chunk), out.split(chunk), strict=True):
        target.copy_(block.to(torch.float64).sqrt())
    return out


def _coordinates(name: str, value: object, m: int) -> torch.Tensor:
    coords = _checks.as_tensor(name, value)
    _checks.check_real(name, coords)
    _checks.check_shape(name, coords, (m, 2), f"(M, 2) = ({m}, 2): one (y, x) per pattern")
    coords = coords.to(torch.float64)
    _checks.check_finite(name, coords)
    return coords
