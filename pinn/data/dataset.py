"""The training dataset: groups of scaled diffraction amplitudes with their relative offsets.

:class:`GroupDataset` turns a :class:`~pinn.data.scan.ScanData` and its
:class:`~pinn.data.grouping.Groups` into model-ready items. The scaled amplitudes
(``intensity_scale * normalization * diffraction``, photon units, see
:mod:`pinn.data.normalize`) are computed once for the M scan points and indexed per group, so
memory is one ``(M, N, N)`` float32 stack however many groups share a pattern.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from pinn.data.grouping import Groups
from pinn.data.normalize import intensity_scale, normalization_factor, resolve_nphotons
from pinn.data.scan import ScanData
from pinn.errors import DataError


class GroupDataset(Dataset):
    """Map-style dataset of G groups of C diffraction patterns.

    Item ``i`` is a dict:

    - ``'amplitude'``: ``(C, N, N)`` float32, the members' diffraction amplitudes scaled to
      photon units, ``intensity_scale * normalization * diffraction`` (zero frequency at the
      centre pixel), channel c = ``groups.indices[i, c]``;
    - ``'offsets'``: ``(C, 2)`` float32, ``(y, x)`` pixels, member position minus the group
      centroid (pinn's sign, the negative of the reference's ``coords_relative``);
    - ``'index'``: 0-d int64, the group index ``i``.

    Attributes: ``nphotons`` (dose the scale assumes), ``normalization`` (the reference's
    ``normalize_data`` factor over the grouped patterns), ``intensity_scale``
    (``sqrt(nphotons) / (N/2)``), ``groups``, ``N``, ``gridsize``, ``probe`` (the scan's raw
    ``(N, N)`` complex64 probe guess or ``(K, N, N)`` modes; the model normalises it),
    ``amplitudes`` (the ``(M, N, N)`` scaled stack) and ``scan``. :meth:`get_batch` fetches a
    whole batch with one gather (the training engine uses it when present).

    Args:
        scan: the scan.
        groups: groups of this scan's points (from :func:`~pinn.data.grouping.group_positions`
            on ``scan.positions``).
        nphotons: dose in mean total counts per pattern. Default: measured over the grouped
            patterns for counts data (then the amplitudes are exactly ``sqrt(counts)`` up to
            float32 rounding), else 1e9 (the reference's default).

    Raises:
        DataError: the groups index points outside the scan, or all grouped patterns are zero.
        ConfigError: ``nphotons`` is not finite and positive.
    """

    def __init__(self, scan: ScanData, groups: Groups, *, nphotons: float | None = None) -> None:
        if not isinstance(scan, ScanData):
            raise DataError(f"scan must be a ScanData, got {type(scan).__name__}")
        if not isinstance(groups, Groups):
            raise DataError(f"groups must be a Groups (from group_positions), got "
                            f"{type(groups).__name__}")
        indices = groups.indices
        if bool((indices < 0).any() or (indices >= scan.n_scans).any()):
            raise DataError(f"groups index scan points up to {int(indices.max())} but the scan "
                            f"has {scan.n_scans}; group this scan's own positions")
        self.scan = scan
        self.groups = groups
        self.N = scan.N
        self.gridsize = groups.gridsize
        self.probe = scan.probe
        self.normalization = normalization_factor(scan.diffraction, indices)
        self.nphotons = resolve_nphotons(scan, indices, nphotons)
        self.intensity_scale = intensity_scale(self.nphotons, self.N)
        # two float32 multiplications in the reference's order: X_full = k * X, then s * X_full
        self.amplitudes = (scan.diffraction * self.normalization) * self.intensity_scale
        self._offsets = groups.offsets.to(torch.float32)

    def __len__(self) -> int:
        return len(self.groups)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """Several items at once, equal to stacking ``self[i]`` for each ``i`` (but one gather).

        Args:
            indices: ``(B,)`` int64 group indices (negative ones count from the end).

        Returns:
            ``{'amplitude': (B, C, N, N) float32, 'offsets': (B, C, 2) float32,
            'index': (B,) int64}``.

        Raises:
            IndexError: an index is out of range.
        """
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        g = len(self)
        if bool(((index < -g) | (index >= g)).any()):
            raise IndexError(f"group indices must be in [-{g}, {g}); got "
                             f"{index.min().item()}..{index.max().item()}")
        index = index % g
        return {
            "amplitude": self.amplitudes[self.groups.indices[index]],  # (B, C, N, N)
            "offsets": self._offsets[index],  # (B, C, 2)
            "index": index,
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Group ``i`` (negative counts from the end) as the dict described above; IndexError
        when out of range."""
        index = int(i)
        if not -len(self) <= index < len(self):
            raise IndexError(f"group index {i} out of range for {len(self)} groups")
        index %= len(self)
        return {
            "amplitude": self.amplitudes[self.groups.indices[index]],  # (C, N, N)
            "offsets": self._offsets[index],  # (C, 2)
            "index": torch.tensor(index, dtype=torch.int64),
        }


class Subset:
    """Some items of a dataset (by index), keeping its batched ``get_batch``: the
    training / validation split of :func:`pinn.fit.train_scan`."""

    def __init__(self, dataset: GroupDataset, indices: torch.Tensor) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.dataset.get_batch(self.indices[indices])
