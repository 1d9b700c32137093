"""Data: the NPZ contract, grouping, normalisation, the training dataset and simulation.

A scan enters pinn as a :class:`ScanData` (from :func:`load_scan`, which dispatches to
:func:`read_npz` or :func:`read_tike_npz`, or from :func:`simulate`) in fixed conventions:
float32 diffraction *amplitude* ``(M, N, N)`` with zero frequency at pixel ``(N//2, N//2)``,
float64 ``(y, x)`` positions of each window's centre pixel ``N//2``, a complex64 ``(N, N)``
probe. :func:`crop_scan` keeps the centre of the detector on a consistently coarser grid.
:func:`group_positions` forms groups of ``gridsize**2`` neighbours, and :class:`GroupDataset`
serves them scaled to photon units (:func:`normalization_factor`, :func:`intensity_scale`).
Inference needs less, a :class:`ScanSource` (positions, probe, patterns read on demand):
ScanData is one, and :func:`open_scan_stream` (``load_scan(..., stream=True)``) gives one that
reads the patterns from the file chunk by chunk, for scans larger than memory.
"""

from pinn.data.crop import crop_scan
from pinn.data.dataset import GroupDataset
from pinn.data.grouping import Groups, group_positions
from pinn.data.load import load_scan
from pinn.data.normalize import (
    intensity_scale,
    normalization_factor,
    normalization_from_energy,
)
from pinn.data.npz import read_npz, write_npz
from pinn.data.objects import make_object
from pinn.data.probes import make_probe
from pinn.data.scan import ScanData, ScanSource
from pinn.data.simulate import simulate, simulate_scan
from pinn.data.stream import NpzScanStream, open_scan_stream
from pinn.data.tike import read_tike_npz
from pinn.data.trajectories import make_positions

__all__ = [
    "GroupDataset",
    "Groups",
    "NpzScanStream",
    "ScanData",
    "ScanSource",
    "crop_scan",
    "group_positions",
    "intensity_scale",
    "load_scan",
    "make_object",
    "make_positions",
    "make_probe",
    "normalization_factor",
    "normalization_from_energy",
    "open_scan_stream",
    "read_npz",
    "read_tike_npz",
    "simulate",
    "simulate_scan",
    "write_npz",
]
