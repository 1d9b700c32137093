"""Set up, run and collect a refinement (:func:`refine_scan`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pinn import ops
from pinn.config import TrainingConfig
from pinn.errors import ConfigError, DataError
from pinn.ops.modes import add_probe_modes, mode_powers, orthogonalize_modes
from pinn.refine.model import POSITION_CONSTRAINTS, POSITION_METHODS, Refiner


#: default epochs of a refinement, and of one that refines the positions too
EPOCHS = 10
POSITION_EPOCHS = 20


@dataclass(frozen=True)
class RefineConfig:
    """How to refine.

    Attributes:
        epochs: passes over the scan points (``None``: :data:`EPOCHS`, or
            :data:`POSITION_EPOCHS` when the positions are refined: they can only start once
            the object and probe explain the data, and then need epochs of their own). After
            construction the field always holds the resolved number.
        batch_size: scan points per optimiser step.
        learning_rate: the object's Adam rate (object units: 1 = a unit-amplitude object),
            decayed by a cosine to ``min_lr_fraction`` of itself.
        probe_lr: the probe's rate relative to the object's, in units of the probe's peak
            amplitude (so probes in any units refine alike).
        position_lr: the positions' Adam rate relative to the object's, in pixels.
        adam_beta2: the decay of Adam's second-moment average (object, probe and Adam-moved
            positions). 0.9, not Adam's usual 0.999: the first steps from a flat start have
            gradients far larger than the later ones, and an average over ~1000 steps (more
            than a whole refinement: 15 steps per epoch at 480 points and batch 32) keeps
            remembering them, so the later steps shrink to a fraction of the rate and the object
            stalls. On the simulated position benchmark at the true positions the deviance
            after 10 epochs is 40.7/px at 0.999 and 0.87/px at 0.9 (docs/DESIGN.md section 9).
        probe_modes: number of probe modes (``None``: as many as the probe guess has).
        mode_power: share of the total power given to each added mode.
        refine_probe: train the probe modes.
        probe_warmup: epochs before the probe modes move (the object adapts to the starting
            probe first).
        refine_positions: train a correction of every position.
        position_warmup: epochs before the positions may move.
        position_plateau: the positions start once an epoch's mean deviance fell by less than
            this fraction of the one before (the object then explains the data at the
            recorded positions about as well as it will); ``None``: at ``position_warmup``.
        max_position_step: largest change of a position within one epoch, pixels.
        probe_support_radius: constrain the probe to a centred disk of this radius (pixels)
            after every step (``None``: no support constraint).
        fix_probe_power: keep the probe's total power at its power-matched start.
        orthogonalize_every_epoch: orthogonalise and sort the modes at the start of every
            epoch as well as at the start and the end (off by default: mixing the modes
            disturbs Adam's per-pixel moments, and from the star's zone-plate guess phase SSIM
            was 0.79 with it and 0.83 without, docs/DESIGN.md section 9).
        position_method: ``"newton"`` (default: after every step, each position of the batch
            takes a Newton step on its own likelihood, gradient over Fisher information,
            :mod:`pinn.refine.positions`) or ``"adam"`` (the optimiser at ``position_lr``). On
            the simulated benchmark at 8 positions per step: 0.42 px RMS against Adam's 0.50
            (benchmarks/README.md, "Position refinement").
        position_damping: fraction of the Newton step taken after every step.
        position_constraint: ``"affine"``: the refined corrections keep no common shift,
            scale, rotation or shear (a global affine change of the positions is nearly
            invisible in the data and drifts; the stage's global geometry is trusted);
            ``"shift"``: only the common shift is removed (for a scan whose scale or rotation
            is itself in doubt).
        seed: data order and every other draw.
    """

    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 0.025
    min_lr_fraction: float = 0.02
    probe_lr: float = 1.0
    position_lr: float = 4.0
    adam_beta2: float = 0.9
    probe_modes: int | None = None
    mode_power: float = 0.02
    refine_probe: bool = True
    probe_warmup: int = 0
    refine_positions: bool = False
    position_warmup: int = 3
    position_plateau: float | None = 0.2
    max_position_step: float = 1.0
    probe_support_radius: float | None = None
    fix_probe_power: bool = False
    orthogonalize_every_epoch: bool = False
    position_method: str = "newton"
    position_damping: float = 0.5
    position_constraint: str = "affine"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs is None:
            object.__setattr__(self, "epochs",
                               POSITION_EPOCHS if self.refine_positions else EPOCHS)

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)
        need(isinstance(self.epochs, int) and self.epochs >= 1,
             f"epochs is {self.epochs!r}; use an int >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size is {self.batch_size!r}; use an int >= 1")
        need(self.learning_rate > 0 and math.isfinite(self.learning_rate),
             f"learning_rate is {self.learning_rate}; use a finite value > 0")
        need(0 < self.min_lr_fraction <= 1, "min_lr_fraction must be in (0, 1]")
        need(self.probe_lr >= 0 and self.position_lr >= 0, "probe_lr and position_lr must be >= 0")
        need(0 < self.adam_beta2 < 1, f"adam_beta2 is {self.adam_beta2}; use a value in (0, 1)")
        need(self.probe_modes is None or (isinstance(self.probe_modes, int)
                                          and self.probe_modes >= 1),
             f"probe_modes is {self.probe_modes!r}; use an int >= 1 (the number of modes)")
        need(0 < self.mode_power < 0.5, f"mode_power is {self.mode_power}; use (0, 0.5)")
        need(isinstance(self.position_warmup, int) and self.position_warmup >= 0,
             "position_warmup must be an int >= 0")
        need(isinstance(self.probe_warmup, int) and self.probe_warmup >= 0,
             "probe_warmup must be an int >= 0")
        need(self.position_plateau is None or 0 < self.position_plateau < 1,
             f"position_plateau is {self.position_plateau}; use a fraction in (0, 1) or None")
        need(self.max_position_step > 0, "max_position_step must be > 0")
        need(self.probe_support_radius is None or self.probe_support_radius > 0,
             f"probe_support_radius is {self.probe_support_radius}; use a radius > 0 pixels")
        need(self.position_method in POSITION_METHODS,
             f"position_method is {self.position_method!r}; use one of {POSITION_METHODS}")
        need(0 < self.position_damping <= 1, "position_damping must be in (0, 1]")
        need(self.position_constraint in POSITION_CONSTRAINTS,
             f"position_constraint is {self.position_constraint!r}; use one of "
             f"{POSITION_CONSTRAINTS}")

    def training(self) -> TrainingConfig:
        """The engine's configuration: cosine decay, no validation split, no early stop, and
        the last epoch's result (not the epoch with the lowest training loss: positions and
        modes may legitimately raise it while they move)."""
        return TrainingConfig(epochs=self.epochs, batch_size=self.batch_size,
                              learning_rate=self.learning_rate, adam_beta2=self.adam_beta2,
                              min_learning_rate=self.learning_rate * self.min_lr_fraction,
                              schedule="cosine", early_stopping_patience=0,
                              validation_fraction=0.0, seed=self.seed, log_images=False,
                              keep_best=False)


@dataclass
class RefineResult:
    """What a refinement produced.

    object: ``(H, W)`` complex64 canvas; coverage: ``(H, W)`` float32 summed probe intensity
    (all modes) at the refined positions; origin_px: object-frame pixel of canvas pixel
    (0, 0); probe: ``(K, N, N)`` complex64 orthogonal modes sorted by power (data units);
    power_fraction: ``(K,)``; positions, positions_initial: ``(M, 2)`` float64 (y, x) object
    pixels of each window's centre pixel (the scan's convention); history: the engine's
    per-epoch records (``train_deviance`` is the Poisson deviance per pixel);
    positions_started: the epoch (0-based) from which the positions moved, or None (not
    refined, or the deviance never settled: see ``RefineConfig.position_plateau``).
    """

    object: torch.Tensor
    coverage: torch.Tensor
    origin_px: tuple[int, int]
    probe: torch.Tensor
    power_fraction: torch.Tensor
    positions: torch.Tensor
    positions_initial: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    positions_started: int | None = None


class CountsDataset:
    """The scan's counts by index: ``{"index": (B,), "counts": (B, N, N), "entropy": (B,)}``,
    counts with zero frequency at pixel (0, 0) (shifted once here rather than every step).

    ``entropy`` is each pattern's mean of ``k log k - k`` (0 log 0 = 0), the data-only part
    of the Poisson deviance, so that the deviance costs nothing beyond the NLL.
    """

    def __init__(self, counts: torch.Tensor) -> None:
        self.counts = torch.fft.ifftshift(counts, dim=(-2, -1)).contiguous()
        self.entropy = torch.empty(counts.shape[0], dtype=torch.float32, device=counts.device)
        for start in range(0, counts.shape[0], 64):  # in float64, a few MB at a time
            k = counts[start:start + 64].to(torch.float64)
            self.entropy[start:start + 64] = torch.xlogy(k, k).sub_(k).mean(dim=(-2, -1))

    def __len__(self) -> int:
        return self.counts.shape[0]

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"index": indices, "counts": self.counts[indices],
                "entropy": self.entropy[indices]}


#: predicted counts are kept above this (an unlit pixel with counts would give log 0)
MIN_COUNTS = 1e-6


def refine_loss(model: Refiner, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean Poisson NLL ``I - k log I`` of the counts (:func:`pinn.ops.poisson_nll`); metric
    ``deviance``, ``2 (NLL + k log k - k)`` per pixel (about 1 at the noise floor)."""
    predicted = model(batch["index"], centered=False).clamp_min(MIN_COUNTS)
    counts = batch["counts"]
    loss = (predicted - counts * torch.log(predicted)).mean()
    deviance = 2 * (loss.detach() + batch["entropy"].mean())
    model.observe_deviance(deviance)
    return loss, {"deviance": deviance}


#: position refinement needs neighbours closer than this fraction of the window's side
MAX_NEIGHBOUR_DISTANCE = 0.5


def check_overlap(positions: torch.Tensor, n: int) -> None:
    """Refuse position refinement when the windows hardly overlap: a position is only
    determined relative to its neighbours' views of the same object.

    Raises:
        ConfigError: the median distance to the nearest neighbour exceeds
            ``MAX_NEIGHBOUR_DISTANCE * n`` (or there is a single position).
    """
    m = positions.shape[0]
    if m < 2:
        raise ConfigError("position refinement needs overlapping scan positions; this scan has "
                          "one. Drop --refine-positions")
    p = positions.to(torch.float64)
    nearest = []
    for chunk in torch.split(torch.arange(m), 2048):
        d = torch.cdist(p[chunk], p)
        d[torch.arange(len(chunk)), chunk] = float("inf")
        nearest.append(d.min(dim=1).values)
    median = float(torch.cat(nearest).median())
    if median > MAX_NEIGHBOUR_DISTANCE * n:
        raise ConfigError(f"the scan positions are {median:.1f} px from their nearest neighbour "
                          f"(median) with {n} px windows: too little overlap to refine "
                          f"positions (needs < {MAX_NEIGHBOUR_DISTANCE * n:.0f} px). Drop "
                          "--refine-positions")


def canvas_frame(positions: torch.Tensor, n: int, margin: int) -> tuple[tuple[int, int],
                                                                       tuple[int, int]]:
    """Origin (object pixel of canvas (0, 0)) and shape of a canvas holding every ``n x n``
    window centred at ``positions`` ``(M, 2)`` with ``margin`` pixels to spare."""
    low = torch.floor(positions.min(dim=0).values) - n // 2 - margin
    high = torch.ceil(positions.max(dim=0).values) - n // 2 + n + margin + 1
    origin = (int(low[0]), int(low[1]))
    return origin, (int(high[0]) - origin[0], int(high[1]) - origin[1])


def refine_scan(scan, config: RefineConfig = RefineConfig(), out_dir: str | Path | None = None,
                *, init_object: torch.Tensor | None = None, init_origin: tuple[int, int] = (0, 0),
                resume: bool = False, device: str = "cpu", verbose: bool = True) -> RefineResult:
    """Refine the object, probe modes and (optionally) positions of ``scan`` on its counts.

    Args:
        scan: a :class:`pinn.data.ScanData` (amplitudes; their squares are the counts).
        config: the refinement settings.
        out_dir: where checkpoints (``checkpoints/``) and TensorBoard logs (``tb/``) go; None
            keeps nothing on disk (and cannot resume).
        init_object: optional ``(H0, W0)`` complex start in the object frame whose pixel
            (0, 0) is the object pixel ``init_origin``; pixels it does not cover start at 1.
        resume: continue from ``out_dir/checkpoints`` (exactly, for the same settings).
        device: torch device.
        verbose: print progress.

    Raises:
        ConfigError, DataError: bad settings or inputs (one-line messages).
    """
    from pinn.engine.memory import reuse_freed_memory

    with reuse_freed_memory():  # every step allocates the same (B, K, N, N) buffers
        return _refine(scan, config, out_dir, init_object, init_origin, resume, device, verbose)


def _refine(scan, config: RefineConfig, out_dir: str | Path | None,
            init_object: torch.Tensor | None, init_origin: tuple[int, int], resume: bool,
            device: str, verbose: bool) -> RefineResult:
    from pinn.engine.train import train

    torch.manual_seed(config.seed)
    n = scan.N
    counts = scan.diffraction.to(torch.float32).square()
    modes = scan.probe.to(torch.complex64)
    if modes.dim() == 2:
        modes = modes[None]
    if modes.shape[-1] != n or modes.shape[-2] != n:
        raise DataError(f"the probe is {tuple(modes.shape[-2:])} but the patterns are {n} x {n}; "
                        "give a probe of the patterns' size")
    if config.refine_positions:
        check_overlap(scan.positions, n)
    k = config.probe_modes or modes.shape[0]
    modes = orthogonalize_modes(add_probe_modes(modes, k, config.mode_power))
    margin = 2 + (math.ceil(config.max_position_step * config.epochs)
                  if config.refine_positions else 0)
    positions = scan.positions.to(torch.float64)
    origin, shape = canvas_frame(positions, n, margin)
    start = torch.ones(shape, dtype=torch.complex64)
    if init_object is not None:
        start = _place(init_object, init_origin, origin, start)
    canvas_positions = (positions - torch.tensor(origin, dtype=torch.float64)).to(torch.float32)
    lr_scales = {"object": 1.0, "probe": config.probe_lr,
                 "positions": config.position_lr}
    modes = _power_matched(modes, counts, canvas_positions, shape, start)
    model = Refiner(canvas_positions, shape, modes, start, lr_scales=lr_scales,
                    refine_probe=config.refine_probe, probe_warmup=config.probe_warmup,
                    refine_positions=config.refine_positions,
                    position_warmup=config.position_warmup,
                    position_plateau=config.position_plateau,
                    max_position_step=config.max_position_step,
                    probe_support=_disk(n, config.probe_support_radius),
                    fix_probe_power=config.fix_probe_power,
                    orthogonalize=config.orthogonalize_every_epoch,
                    position_method=config.position_method,
                    position_damping=config.position_damping,
                    position_constraint=config.position_constraint)
    out = Path(out_dir) if out_dir is not None else None
    fit = train(model, refine_loss, CountsDataset(counts), None, config.training(),
                checkpoint_dir=out / "checkpoints" if out else None,
                log_dir=out / "tb" if out else None, resume=resume, device=device,
                run_info={"refine": _jsonable(config), "patterns": int(counts.shape[0]),
                          "size": n}, verbose=verbose)
    return _collect(model.cpu(), origin, fit.history)


def _disk(n: int, radius: float | None) -> torch.Tensor | None:
    """``(n, n)`` float mask, 1 within ``radius`` pixels of the centre pixel ``n//2``."""
    if radius is None:
        return None
    y = torch.arange(n, dtype=torch.float32) - n // 2
    return ((y[:, None] ** 2 + y[None, :] ** 2) <= radius**2).to(torch.float32)


def _place(image: torch.Tensor, image_origin: tuple[int, int], origin: tuple[int, int],
           canvas: torch.Tensor) -> torch.Tensor:
    """``canvas`` with the part of ``image`` (object pixel ``image_origin`` at its (0, 0)) that
    overlaps it copied in (nonzero pixels only: an uncovered 0 stays the flat start)."""
    out = canvas.clone()
    oy, ox = image_origin[0] - origin[0], image_origin[1] - origin[1]
    h, w = image.shape
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + h, out.shape[0]), min(ox + w, out.shape[1])
    if y1 > y0 and x1 > x0:
        part = image[y0 - oy:y1 - oy, x0 - ox:x1 - ox].to(torch.complex64)
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = torch.where(part.abs() > 0, part, region)
    return out


@torch.no_grad()
def _power_matched(modes: torch.Tensor, counts: torch.Tensor, positions: torch.Tensor,
                   shape: tuple[int, int], start: torch.Tensor) -> torch.Tensor:
    """The modes scaled so that the predicted counts of the start match the measured total
    (the object-probe scale ambiguity is fixed here, once: the object stays near unit
    amplitude and the probe carries the dose)."""
    probe_model = Refiner(positions, shape, modes, start, refine_probe=False)
    pick = torch.linspace(0, counts.shape[0] - 1, min(counts.shape[0], 64)).round().long()
    predicted = float(probe_model(pick).sum(dim=(-2, -1)).mean())
    measured = float(counts.sum(dim=(-2, -1)).mean())
    if not (predicted > 0 and measured > 0):
        raise DataError("the patterns or the probe carry no intensity; check the data and the "
                        "probe guess")
    return modes * math.sqrt(measured / predicted)


def _collect(model: Refiner, origin: tuple[int, int], history: list) -> RefineResult:
    modes = orthogonalize_modes(model.modes.detach())
    powers = mode_powers(modes)
    obj = model.object.detach().clone()
    positions = model.positions.detach().to(torch.float64)
    intensity = modes.abs().square().sum(dim=0)
    coverage = ops.reassemble_patches(intensity.expand(positions.shape[0], -1, -1)[None],
                                      positions.to(torch.float32)[None], tuple(obj.shape))[0]
    shift = torch.tensor(origin, dtype=torch.float64)
    return RefineResult(object=obj, coverage=coverage, origin_px=origin, probe=modes,
                        power_fraction=powers / powers.sum(), positions=positions + shift,
                        positions_initial=model.positions_initial.to(torch.float64) + shift,
                        history=list(history),
                        positions_started=(int(model.positions_start)
                                           if int(model.positions_start) >= 0 else None))


def _jsonable(config: RefineConfig) -> dict:
    from dataclasses import asdict
    return asdict(config)
