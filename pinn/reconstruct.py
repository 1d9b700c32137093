"""Inference over a whole scan and stitching into one complex object.

Every scan position is used. Positions are grouped as the model was trained: its gridsize, and
the neighbours and seed its archive records (docs/DESIGN.md §3). The diffraction is normalised
with the scan's own factor and scaled by the model's intensity scale, the network runs in
batches, and the centre ``crop_px`` window of each group's object is added onto a canvas in
the object's pixel frame with :func:`pinn.ops.stitch_sums`, together with its coverage. The
canvas sums are streamed: memory stays bounded by the batch and the canvas, whatever the number
of positions. The stitched object is the sum divided by the coverage
(:func:`pinn.ops.normalize_stitch`): the same stitch as the model's merge, with other weights.
The model's passes over the scan (:func:`scan_passes`, docs/DESIGN.md §11.4) then refine it
against every pattern, reading the scan once more per pass.

Canvas geometry: canvas pixel ``(i, j)`` is object pixel ``(i + origin_y, j + origin_x)``,
where positions are the object pixels of each window's centre pixel ``N//2``.

The scan is any :class:`pinn.data.ScanSource`: a :class:`~pinn.data.ScanData` in memory or a
stream (:class:`pinn.data.stream.NpzScanStream`) that reads the patterns of each batch from
the file. Only the positions, ``pattern_energy()`` (one pass, for the normalisation factor)
and ``read(indices)`` of one batch at a time are used, so a scan larger than memory streams
through with memory bounded by the batch, the canvas and the positions.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pinn import ops
from pinn.archive import Archive
from pinn.data import Groups, ScanSource, group_positions
from pinn.data.normalize import normalization_from_energy
from pinn.engine.distributed import resolve_device
from pinn.errors import ConfigError, DataError
from pinn.model import PtychoPINN
from pinn.model.ptychopinn import PROJECTION_STEP_SIZE


@dataclass(frozen=True)
class Reconstruction:
    """A stitched object.

    object: ``(H, W)`` complex64; 0 where no patch reached.
    coverage: ``(H, W)`` float32 summed patch weight per pixel (illumination with
        ``weighting="probe"``).
    origin_px: ``(y, x)`` object-frame pixel of canvas pixel ``(0, 0)`` (integers).
    crop_px: side of the central window kept from each group's object.
    n_positions, n_groups: how many scan points and groups went in.
    """

    object: torch.Tensor
    coverage: torch.Tensor
    origin_px: tuple[int, int]
    crop_px: int
    n_positions: int
    n_groups: int

    @property
    def amplitude(self) -> torch.Tensor:
        return self.object.abs()

    @property
    def phase(self) -> torch.Tensor:
        return self.object.angle()

    def covered(self, fraction: float = 0.5) -> torch.Tensor:
        """``(H, W)`` bool: pixels whose coverage is at least ``fraction`` of the median
        coverage of the lit pixels (those above 1 % of the maximum): the well-covered region
        to evaluate. The 1 % floor keeps the faint tails of probe weights out of the median."""
        peak = float(self.coverage.max())
        lit = self.coverage[self.coverage > 0.01 * peak]
        if peak <= 0 or lit.numel() == 0:
            return torch.zeros_like(self.coverage, dtype=torch.bool)
        return self.coverage >= fraction * lit.median()

    def object_window(self, image: torch.Tensor) -> torch.Tensor:
        """The part of an object-frame image (e.g. the ground truth) under this canvas, zero
        where the canvas extends past the image. ``(H_obj, W_obj)`` -> ``(H, W)``."""
        out = torch.zeros(self.object.shape, dtype=image.dtype)
        oy, ox = self.origin_px
        h, w = out.shape
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + h, image.shape[0]), min(ox + w, image.shape[1])
        if y1 > y0 and x1 > x0:
            out[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = image[y0:y1, x0:x1]
        return out


#: Bytes per canvas pixel while stitching: the complex64 sum, the float32 coverage and the
#: complex64 quotient.
CANVAS_BYTES_PER_PX = 20


def canvas_geometry(centres: torch.Tensor, crop_px: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Origin and shape of a canvas holding ``crop_px`` windows centred at ``centres (G, 2)``.

    Raises:
        DataError: the canvas would not fit in this machine's memory (positions in metres or
            nanometres rather than pixels look like this).
    """
    margin = crop_px // 2 + 2
    low = torch.floor(centres.min(dim=0).values) - margin
    high = torch.ceil(centres.max(dim=0).values) + margin + 1
    origin = (int(low[0]), int(low[1]))
    shape = (int(high[0] - low[0]), int(high[1] - low[1]))
    needed = shape[0] * shape[1] * CANVAS_BYTES_PER_PX
    memory = _physical_memory()
    if memory is not None and needed > memory:
        raise DataError(
            f"the scan positions span {shape[0]} x {shape[1]} pixels: stitching them needs "
            f"{needed / 2**30:.3g} GiB, more than this machine's {memory / 2**30:.3g} GiB of "
            "memory. Positions must be (y, x) object pixels, not metres or nanometres: "
            "convert them (divide by the pixel size), or reconstruct part of the scan")
    return origin, shape


#: Bytes per stitched window pixel of every group kept for phase synchronisation: the
#: complex64 object and its float32 weight, and a quarter of that for their 2 x 2 bins.
SYNC_BYTES_PER_PX = 15


def _sync_store(groups: int, crop_px: int) -> list | None:
    """An empty list to keep every group's window in for phase synchronisation, or None
    (with a warning) when they would take more than a quarter of the physical memory."""
    needed = groups * crop_px**2 * SYNC_BYTES_PER_PX
    memory = _physical_memory()
    if memory is not None and needed > memory // 4:
        warnings.warn(f"phase synchronisation skipped: the {groups} groups' windows would take "
                      f"{needed / 2**30:.3g} GiB, more than a quarter of this machine's "
                      f"{memory / 2**30:.3g} GiB; they are stitched as they are (pass "
                      "projection_sync_rounds=0 / --projection-sync 0 to say so, or "
                      "reconstruct part of the scan)", stacklevel=3)
        return None
    return []


#: Bin of the windows the phase synchronisation runs on (see :func:`_synchronise`).
SYNC_BIN = 2


def _synchronise(kept: list, shape: tuple[int, int], crop_px: int, rounds: int
                 ) -> torch.Tensor:
    """The groups' phase constants ``(G,)`` from their kept ``(obj, weight, pos)`` batches.

    The constants are smooth information, so the rounds run on the windows binned by
    ``SYNC_BIN`` (the weighted mean of each bin, placed at the position divided by the bin; all
    windows share the bin's sub-pixel offset, so their overlaps are unchanged): a quarter of
    the memory and time of the full windows. On the simulated scans of docs/DESIGN.md §11.2
    this changed the phase SSIM by at most 0.005 (bins of 4 lost up to 0.02, and on ``lines``
    more than the synchronisation gains).
    """
    factor = SYNC_BIN if crop_px % SYNC_BIN == 0 else 1

    def pooled(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x[:, None], factor)[:, 0]

    objs, weights, positions = [], [], []
    for obj, weight, pos in kept:
        mass = pooled(weight)
        weighted = obj * weight
        mean = torch.complex(pooled(weighted.real), pooled(weighted.imag))
        objs.append(mean / mass.clamp_min(1e-30))
        weights.append(mass)
        positions.append(pos[0] / factor)
    binned = (shape[0] // factor + 2, shape[1] // factor + 2)
    return ops.phase_offsets(torch.cat(objs), torch.cat(positions), binned, torch.cat(weights),
                             rounds)


def _check_count(name: str, value: object) -> None:
    """``value`` must be an int >= 0 (not a bool): a number of steps, rounds or passes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} is {value!r}; use an int >= 0")


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not say (e.g. Windows)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def reconstruct(
    model: Archive | PtychoPINN,
    scan: ScanSource,
    *,
    batch_size: int = 64,
    crop_px: int | None = None,
    weighting: str = "probe",
    neighbors: int | None = None,
    seed: int | None = None,
    transpose: bool = False,
    flip_x: bool = False,
    flip_y: bool = False,
    eps: float = 1e-9,
    device: str | torch.device = "cpu",
    progress: bool = True,
    groups: Groups | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    projection_steps: int | None = None,
    projection_blur_px: float | None = None,
    projection_sync_rounds: int | None = None,
    projection_passes: int | None = None,
) -> Reconstruction:
    """Reconstruct the whole scan with a trained model.

    Args:
        model: a trained model: an :class:`~pinn.archive.Archive` (``load_archive(path)``),
            which also gives the grouping the model was trained with, or a bare
            :class:`PtychoPINN`.
        scan: the scan, any :class:`pinn.data.ScanSource` (a ScanData, or a stream from
            :func:`pinn.data.stream.open_scan_stream` for scans larger than memory); its
            patterns must be ``N x N`` for the model's N. Its patterns are read batch by batch
            with ``scan.read`` (``batch_size * gridsize**2`` at a time), after one pass of
            ``scan.pattern_energy()`` for the normalisation factor.
        batch_size: groups per forward pass.
        crop_px: side of each group object's central window that is stitched (default: the
            whole patch with ``weighting="probe"``, ``5N/16`` with ``"uniform"``, which is the
            reference's 20 px at N = 64).
        weighting: ``"probe"`` weights every object pixel by the group's illumination
            (``sum_c |probe|**2`` at the members' positions, peak 1), as iterative ptychography
            weights its object update, so that poorly lit pixels count little; ``"uniform"``
            averages the cropped windows with equal weights (the reference's stitching).
        neighbors, seed: how positions are grouped at gridsize > 1 (every position seeds a
            group): candidate neighbours per position and the seed of the draw. Default: the
            archive's ``config.data.neighbors`` and ``config.data.grouping_seed``, i.e. the
            training's grouping; values given here override it. A bare model at gridsize > 1
            needs them (or ``groups``). Unused at gridsize 1.
        transpose, flip_x, flip_y: the reference's stitching options: swap the axes of each
            object patch; negate the x / y coordinates of the positions.
        eps: added to the coverage, relative to its maximum, before dividing.
        device: where the network runs ("cpu", "cuda", "cuda:N" or "auto").
        progress: show a progress bar on stderr.
        groups: precomputed groups (default: group the scan's positions); they must have
            the model's ``gridsize**2`` members.
        on_batch: called as ``on_batch(done, total)`` after each batch.
        projection_steps: error-reduction updates of each group canvas against its measured
            amplitudes before stitching (default: the model's ``config.projection_steps``;
            0: the network's output as it is; docs/DESIGN.md §11).
        projection_blur_px: the standard deviation in pixels of the Gaussian blur of each
            group canvas before its projection steps (default: the model's
            ``config.blur_px``: its ``projection_blur_px`` or the gridsize's default; 0: no blur).
        projection_sync_rounds: with projection steps, rounds of phase synchronisation of the
            groups' objects before they are stitched (:func:`pinn.ops.phase_offsets`; default:
            the model's ``config.sync_rounds``; 0: stitched as they are). The groups'
            stitched windows are then kept in memory until the end (15 bytes per window pixel);
            where they would take more than a quarter of this machine's memory they are
            stitched as they are, with a warning.
        projection_passes: passes of error reduction over the whole scan after stitching
            (:func:`scan_passes`; default: the model's ``config.projection_passes``; 0: the
            stitched object as it is). Each pass reads every pattern once more. Not with
            ``transpose``, whose stitched frame is not the patterns' (given explicitly: an
            error; from the model's config: no passes).

    Returns:
        The stitched :class:`Reconstruction` (on the CPU).

    Raises:
        DataError: patterns of the wrong size, or positions spanning a canvas larger than
            memory; ConfigError: bad options or device, groups of another gridsize, or no
            grouping for a bare model at gridsize > 1.
    """
    if isinstance(model, Archive):
        data = model.config.data
        neighbors = data.neighbors if neighbors is None else neighbors
        seed = data.grouping_seed if seed is None else seed
        model = model.model
    n = model.size
    if scan.N != n:
        raise DataError(f"the scan's patterns are {scan.N} x {scan.N} but the model was trained "
                        f"on {n} x {n}; crop or bin the patterns to {n} (e.g. --crop-patterns {n})")
    if weighting not in ("probe", "uniform"):
        raise ConfigError(f"weighting is {weighting!r}; use 'probe' or 'uniform'")
    if crop_px is None:
        crop_px = n if weighting == "probe" else (5 * n) // 16
    crop_px = int(crop_px)
    if not 1 <= crop_px <= n:
        raise ConfigError(f"crop_px is {crop_px}; use a value from 1 to the patch size {n}")
    if batch_size < 1:
        raise ConfigError(f"batch_size is {batch_size}; use a positive int")
    if projection_steps is None:
        projection_steps = model.config.projection_steps
    _check_count("projection_steps", projection_steps)
    if projection_blur_px is None:
        projection_blur_px = model.config.blur_px
    if isinstance(projection_blur_px, bool) or not isinstance(projection_blur_px, (int, float)) \
            or not math.isfinite(projection_blur_px) or projection_blur_px < 0:
        raise ConfigError(f"projection_blur_px is {projection_blur_px!r}; use 0 (no blur) or a "
                          "standard deviation in pixels")
    if projection_sync_rounds is None:
        projection_sync_rounds = model.config.sync_rounds
    _check_count("projection_sync_rounds", projection_sync_rounds)
    if projection_passes is None:
        projection_passes = 0 if transpose else model.config.projection_passes
    _check_count("projection_passes", projection_passes)
    if projection_passes and transpose:
        raise ConfigError("projection_passes needs the patterns' own frame, which transpose "
                          "swaps; pass projection_passes=0 with transpose")
    device = resolve_device(device)
    gridsize = model.config.gridsize
    positions = scan.positions.clone()
    if flip_x:
        positions[:, 1] = -positions[:, 1]
    if flip_y:
        positions[:, 0] = -positions[:, 0]
    if groups is not None and groups.indices.shape[-1] != gridsize**2:
        raise ConfigError(f"the groups have {groups.indices.shape[-1]} members but the model "
                          f"was trained with gridsize {gridsize} ({gridsize**2} members); "
                          f"group the positions with gridsize {gridsize}")
    if groups is None and gridsize == 1:
        groups = group_positions(positions, 1)  # each position alone: nothing is drawn
    elif groups is None:
        if neighbors is None or seed is None:
            raise ConfigError(f"the model has gridsize {gridsize}: pass neighbors= and seed= "
                              "(the grouping it was trained with, config.data.neighbors and "
                              "grouping_seed), or pass its Archive instead of the bare model")
        groups = group_positions(positions, gridsize, neighbors=neighbors, seed=seed)
    elif flip_x or flip_y:  # the flips apply to given groups as to positions
        sign = torch.tensor([-1.0 if flip_y else 1.0, -1.0 if flip_x else 1.0],
                            dtype=torch.float64)
        groups = Groups(indices=groups.indices, offsets=groups.offsets * sign,
                        centroids=groups.centroids * sign)
    with torch.no_grad():  # a trainable intensity scale is a tensor that requires grad
        model_scale = float(model.intensity_scale)
    origin, shape = canvas_geometry(groups.centroids, crop_px)  # before a pass over the data
    factor = normalization_from_energy(scan.pattern_energy(), groups.indices, n)
    scale = float(factor) * model_scale  # the same float32 factor as normalization_factor
    canvas_positions = (groups.centroids - torch.tensor(origin, dtype=torch.float64))

    model = model.to(device).eval()
    sums = torch.zeros(1, *shape, dtype=torch.complex64)  # one canvas
    coverage = torch.zeros(1, *shape, dtype=torch.float32)
    ones = torch.ones(crop_px, crop_px)
    window = slice(n // 2 - crop_px // 2, n // 2 - crop_px // 2 + crop_px)
    # the window keeps the patch's centre pixel N//2 as its own centre pixel crop_px//2, for
    # odd crops too (ops.center_crop refuses a parity change, which would move the centre)
    total = len(groups)
    kept = _sync_store(total, crop_px) if projection_steps and projection_sync_rounds else None
    bar = _ProgressBar(total, enabled=progress)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            members = groups.indices[start:stop]  # (B, C)
            patterns = scan.read(members.flatten()).reshape(*members.shape, n, n)
            amplitude = patterns.to(device) * scale  # (B, C, N, N) float32
            offsets = groups.offsets[start:stop].to(device=device, dtype=torch.float32)
            obj = model(amplitude, offsets, steps=projection_steps,
                        blur_px=float(projection_blur_px)).object  # (B, N, N)
            obj = obj[..., window, window].cpu()  # (B, M, M)
            if weighting == "probe":
                weight = model.illumination(offsets)[..., window, window].cpu()  # (B, M, M)
            else:
                weight = ones.expand(stop - start, -1, -1)
            if transpose:
                obj, weight = obj.transpose(-2, -1), weight.transpose(-2, -1)
            pos = canvas_positions[start:stop].to(torch.float32)[None]  # (1, B, 2)
            if kept is not None:  # stitched once their phases agree
                kept.append((obj, weight, pos))
            else:
                ops.stitch_sums(obj[None], pos, shape, weights=weight[None],
                                out=(sums, coverage))
            bar.update(stop)
            if on_batch is not None:
                on_batch(stop, total)
    bar.close()
    if kept:
        phase = _synchronise(kept, shape, crop_px, projection_sync_rounds)
        done = 0
        for obj, weight, pos in kept:  # batch by batch: no second copy of every window
            turn = torch.polar(torch.ones_like(phase[done:done + len(obj)]),
                               -phase[done:done + len(obj)])
            ops.stitch_sums((obj * turn[:, None, None])[None], pos, shape,
                            weights=weight[None], out=(sums, coverage))
            done += len(obj)
    image = ops.normalize_stitch(sums, coverage,
                                 eps * float(coverage.max().clamp_min(1e-30)))[0]  # (H, W)
    if projection_passes:  # over the positions the groups hold (all, unless groups were given)
        members = torch.unique(groups.indices)
        frame = positions[members] - torch.tensor(origin, dtype=torch.float64)
        image = scan_passes(image, frame.to(torch.float32), scan, float(factor), model,
                            projection_passes, indices=members, device=device,
                            progress=progress)
    return Reconstruction(object=image, coverage=coverage[0], origin_px=origin, crop_px=crop_px,
                          n_positions=scan.n_scans, n_groups=total)


#: Positions per block of :func:`scan_passes`: a block's update is one parallel error-reduction
#: step over its patterns, the blocks of a pass follow one another.
PASS_BLOCK = 64


def scan_passes(image: torch.Tensor, positions: torch.Tensor, scan: ScanSource, factor: float,
                model: PtychoPINN, passes: int, *, indices: torch.Tensor | None = None,
                block: int = PASS_BLOCK, device: str | torch.device = "cpu",
                progress: bool = False) -> torch.Tensor:
    """Passes of error reduction over a whole scan's stitched object (docs/DESIGN.md §11.4).

    Each pass visits every position once, in blocks of ``block`` positions in a random order
    drawn from a generator seeded with the pass's number (so the result is reproducible); each
    block moves the object by one over-relaxed error-reduction step against its patterns
    (:func:`pinn.ops.project_amplitudes` with the model's probe modes, mask and
    ``PROJECTION_STEP_SIZE``). Pixels no probe reaches keep their value.

    Args:
        image: ``(H, W)`` complex64 stitched object (the canvas of :func:`reconstruct`).
        positions: ``(M, 2)`` float32 ``(y, x)`` canvas pixels of the centre pixel ``N//2`` of
            each pattern used (row ``i``: pattern ``indices[i]`` of ``scan``).
        scan: the scan; its patterns are read block by block with ``scan.read``.
        factor: the scan's normalisation factor: ``factor * pattern`` is the amplitude the
            model's probe and object predict
            (:func:`pinn.data.normalize.normalization_from_energy`).
        model: the model whose probe modes and mask light the object.
        passes: number of passes, >= 0 (0 returns ``image`` on the CPU as it is).
        indices: ``(M,)`` int64 scan rows of the positions (default: ``0 .. M-1``, every
            pattern of the scan).
        block: positions per block.
        device: where the steps run.
        progress: show a progress bar on stderr.

    Returns:
        ``(H, W)`` complex64 on the CPU.
    """
    modes = model.probe_modes.detach().to(device)
    mask = None if model.probe_mask is None else model.probe_mask.to(device)
    canvas = image.to(device)[None]  # (1, H, W)
    count = positions.shape[0]
    bar = _ProgressBar(passes * count, enabled=progress, label="passes", unit="positions")
    with torch.no_grad():
        for turn in range(passes):
            order = torch.randperm(count, generator=torch.Generator().manual_seed(turn))
            for index, members in enumerate(order.split(block)):
                rows = members if indices is None else indices[members]
                amplitude = scan.read(rows).to(device) * factor  # (b, N, N)
                canvas = ops.project_amplitudes(canvas, positions[members].to(device)[None],
                                                modes, amplitude[None], 1, mask,
                                                step_size=PROJECTION_STEP_SIZE)
                bar.update(turn * count + min((index + 1) * block, count))
    bar.close()
    return canvas[0].cpu()


def save_reconstruction(result: Reconstruction, out_dir: str | Path) -> dict[str, Path]:
    """Write ``reconstruction.npz`` (object, amplitude, phase, coverage, origin_px, crop_px) and
    ``amplitude.png``/``phase.png`` with colour bars into ``out_dir``; returns the paths.

    All three are encoded first and written together (:func:`pinn.atomic.atomic_write_files`):
    a failure (a full disk) leaves any previous files, and no new directory, behind.
    """
    from pinn.atomic import atomic_write_files
    from pinn.plotting import encode_png, figure

    out_dir = Path(out_dir)
    paths = {"npz": out_dir / "reconstruction.npz", "amplitude": out_dir / "amplitude.png",
             "phase": out_dir / "phase.png"}
    buffer = io.BytesIO()
    np.savez(buffer, object=result.object.numpy(), amplitude=result.amplitude.numpy(),
             phase=result.phase.numpy(), coverage=result.coverage.numpy(),
             origin_px=np.asarray(result.origin_px, dtype=np.int64),
             crop_px=np.asarray(result.crop_px, dtype=np.int64))
    mask = result.covered(0.05).numpy()
    atomic_write_files({
        paths["npz"]: buffer.getvalue(),
        paths["amplitude"]: encode_png(figure(result.amplitude.numpy(), mask, "amplitude",
                                              "gray")),
        paths["phase"]: encode_png(figure(result.phase.numpy(), mask, "phase (rad)",
                                          "twilight")),
    })
    return paths


class _ProgressBar:
    """A minimal progress bar on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int, enabled: bool, label: str = "reconstruct",
                 unit: str = "groups") -> None:
        self.total, self.enabled = total, enabled
        self.label, self.unit = label, unit
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 30
        filled = int(width * done / max(self.total, 1))
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                f"{self.unit} {rate:.0f}/s ETA {eta:.0f}s")
        sys.stderr.write(("\r\033[K" + line) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
