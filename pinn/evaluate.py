"""Evaluation of saved reconstructions against a ground truth (what ``pinn evaluate`` runs).

The reconstruction NPZ written by :func:`pinn.reconstruct.save_reconstruction` records the
object-frame pixel of its canvas origin, so the ground truth (``objectGuess`` of a scan NPZ)
is cut to the same pixel grid; metrics are computed over the largest rectangle of well-covered
pixels (coverage at least half the median coverage) inside the ground truth, after subpixel
registration. A rectangle because SSIM and FRC need one; the largest one *inside* the
well-covered region, because the bounding box of an irregular (random or spiral) scan holds
pixels no patch reached, which would score a perfect reconstruction well below 1 and bias the
registration. This module handles the files and the region; the numbers come from
:func:`pinn.metrics.evaluate_reconstruction` (:mod:`pinn.metrics.quality`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pinn.data.safe_npz import load_array, open_npz
from pinn.errors import DataError
from pinn.metrics import evaluate_reconstruction
from pinn.reconstruct import Reconstruction

_RECON_KEYS = ("object", "coverage", "origin_px", "crop_px")


def _read_arrays(path: Path, what: str, keys: tuple[str, ...]
                 ) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays ``keys`` (those present) of an NPZ file and the names of all its arrays.

    Only the wanted arrays are read, so an unrelated pickled key (the reference's
    ``_metadata``) does not stop the read; the wanted ones are never unpickled.
    """
    try:
        with open_npz(path) as archive:
            names = list(archive.files)
            arrays = {k: load_array(archive, path, k) for k in keys if k in names}
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # numpy returns a non-.npy member as bytes
            raise DataError(f"{what}: {path}: '{key}' is not a NumPy array (a zip member "
                            "without an .npy header); re-create the file with numpy.savez")
    return arrays, names


def _numeric(path: Path, key: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.kind not in "biufc":  # (timedelta64 counts as a NumPy number)
        raise DataError(f"{path.name}: '{key}' has dtype {value.dtype}; expected numbers")
    return value


def load_reconstruction(path: str | os.PathLike) -> Reconstruction:
    """Read ``reconstruction.npz`` back into a :class:`Reconstruction`.

    Raises:
        DataError: the file is missing, not an NPZ archive, lacks a key, holds pickled or
            non-numeric arrays, the arrays have the wrong shapes, the coverage is not finite
            and >= 0, or origin_px/crop_px are not integers.
    """
    path = Path(path)
    data, names = _read_arrays(path, "reconstruction", _RECON_KEYS)
    missing = [k for k in _RECON_KEYS if k not in data]
    if missing:
        raise DataError(f"reconstruction {path} lacks {missing} (keys found: {sorted(names)}); "
                        "pass the reconstruction.npz written by `pinn reconstruct`")
    obj, coverage = (_numeric(path, k, data[k]) for k in ("object", "coverage"))
    if obj.ndim != 2 or coverage.shape != obj.shape or obj.size == 0:
        raise DataError(f"reconstruction {path}: object {obj.shape} and coverage "
                        f"{coverage.shape} must be the same non-empty (H, W)")
    if np.iscomplexobj(coverage) or not np.isfinite(coverage).all() or (coverage < 0).any():
        raise DataError(f"reconstruction {path}: coverage must be finite real weights >= 0; "
                        "re-create the file with `pinn reconstruct`")
    origin = _numeric(path, "origin_px", data["origin_px"]).reshape(-1)
    crop = _numeric(path, "crop_px", data["crop_px"]).reshape(-1)
    if origin.size != 2 or crop.size != 1:
        raise DataError(f"reconstruction {path}: origin_px must hold (y, x) and crop_px one "
                        f"integer (found {origin.size} and {crop.size} values)")
    for key, values in (("origin_px", origin), ("crop_px", crop)):
        real = np.zeros(1) if np.iscomplexobj(values) else values.astype(np.float64)
        if (np.iscomplexobj(values) or not np.isfinite(real).all()
                or (real != np.round(real)).any() or (np.abs(real) > 2**62).any()):
            raise DataError(f"reconstruction {path}: {key} is {values.tolist()}; expected "
                            "integers (re-create the file with `pinn reconstruct`)")
    return Reconstruction(object=torch.from_numpy(obj.astype(np.complex64)),
                          coverage=torch.from_numpy(coverage.astype(np.float32)),
                          origin_px=(int(origin[0]), int(origin[1])), crop_px=int(crop[0]),
                          n_positions=0, n_groups=0)


def load_ground_truth(path: str | os.PathLike) -> torch.Tensor:
    """``objectGuess`` (or ``object``) of an NPZ file, ``(H, W)`` complex64.

    Raises:
        DataError: the file is missing or not an NPZ archive; it has neither key; the object
            is pickled, not a numeric ``(H, W)`` image, or not finite.
    """
    path = Path(path)
    data, names = _read_arrays(path, "reference", ("objectGuess", "object"))
    key = next((k for k in ("objectGuess", "object") if k in data), None)
    if key is None:
        raise DataError(f"reference {path} has no objectGuess (keys: {sorted(names)}); pass "
                        "an NPZ with the ground-truth object, e.g. one from `pinn simulate`")
    obj = data[key]
    if obj.ndim != 2 or obj.dtype.kind not in "biufc":
        raise DataError(f"reference {path}: {key} has shape {obj.shape} and dtype {obj.dtype}; "
                        "expected a numeric (H, W) image")
    if not np.isfinite(obj).all():
        raise DataError(f"reference {path}: {key} contains NaN or inf")
    return torch.from_numpy(obj.astype(np.complex64))


def evaluate(result: Reconstruction, ground_truth: torch.Tensor, *, register: bool = True,
             phase_ssim_compat: bool = False, coverage_fraction: float = 0.5) -> dict:
    """Metrics of a reconstruction against an object-frame ground truth (see
    :func:`pinn.metrics.evaluate_reconstruction`), over the largest rectangle of pixels that
    are well covered (coverage at least ``coverage_fraction`` of the median) and inside the
    ground truth.

    Raises:
        DataError: no well-covered pixel lies inside the ground truth, or that rectangle is
            smaller than 7 x 7.
    """
    truth = result.object_window(ground_truth)
    inside = result.object_window(torch.ones(ground_truth.shape, dtype=torch.bool))
    mask = result.covered(coverage_fraction) & inside
    if not bool(mask.any()):
        raise DataError("the reconstruction does not overlap the ground truth; check that "
                        "both come from the same scan")
    region = largest_rectangle(mask.numpy())
    metrics = evaluate_reconstruction(result.object.numpy(), truth.numpy(), region,
                                      register=register, phase_ssim_compat=phase_ssim_compat)
    return metrics


#: Below this correlation of the registered amplitudes (phases for a pure phase object) a
#: reconstruction is not recognisably the ground truth's object. Unrelated simulated objects
#: (``grf`` and ``lines``, other seeds) reached at most 0.26 in magnitude after registration,
#: while a model trained for only 8 epochs (amplitude SSIM 0.44) reached 0.82.
MIN_MATCH_CORRELATION = 0.4


def poor_match(metrics: dict) -> str | None:
    """A one-line warning when ``metrics`` (of :func:`evaluate`) compare images that hardly
    resemble each other, else None.

    The criterion is Pearson's correlation of the registered amplitudes (of the phases when
    the true amplitude is constant), below :data:`MIN_MATCH_CORRELATION`: a reconstruction
    of another scan, or of an untrained model, scores near 0, so its SSIM, PSNR and FRC
    measure nothing.
    """
    name = "amplitude"
    correlation = metrics.get("amplitude_correlation", float("nan"))
    if not np.isfinite(correlation):
        name, correlation = "phase", metrics.get("phase_correlation", float("nan"))
    if not np.isfinite(correlation) or correlation >= MIN_MATCH_CORRELATION:
        return None
    return (f"the reconstruction hardly resembles the ground truth ({name} correlation "
            f"{correlation:.2f} after registration, below {MIN_MATCH_CORRELATION}): check that "
            "both come from the same scan (an untrained model scores as low); the metrics "
            "compare unrelated images")


def largest_rectangle(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the largest axis-aligned rectangle of True pixels of ``mask (H, W)``
    (the first one found, scanning rows downwards, on ties). All False if ``mask`` is."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    heights = np.zeros(width + 1, dtype=np.int64)  # trailing 0 closes every run
    best, box = 0, (0, 0, 0, 0)
    for row in range(height):
        heights[:width] = np.where(mask[row], heights[:width] + 1, 0)
        stack: list[tuple[int, int]] = []  # (first column, height), heights increasing
        for col, h in enumerate(heights.tolist()):
            start = col
            while stack and stack[-1][1] >= h:
                start, top = stack.pop()
                if top * (col - start) > best:
                    best, box = top * (col - start), (row - top + 1, row + 1, start, col)
            stack.append((start, h))
    out = np.zeros_like(mask)
    y0, y1, x0, x1 = box
    out[y0:y1, x0:x1] = True
    return out


def evaluate_files(reconstruction: str | os.PathLike, reference: str | os.PathLike, *,
                   register: bool = True, phase_ssim_compat: bool = False) -> dict:
    """:func:`evaluate` of a ``reconstruction.npz`` against the ``objectGuess`` of an NPZ."""
    return evaluate(load_reconstruction(reconstruction), load_ground_truth(reference),
                    register=register, phase_ssim_compat=phase_ssim_compat)
