"""The refiner: a complex object canvas, mixed-state probe modes and per-position offsets,
fitted directly to the measured counts by the same physics as the network (no network).

Forward model for scan point ``m`` at canvas position ``p = p0[m] + offset[m]`` ((y, x)
pixels of the window's centre pixel ``N//2``), with ``r = round(p)`` and ``f = p - r``::

    window  = canvas[r - N//2 : r - N//2 + N]            # integer window, no interpolation
    probe_k = fourier_shift(modes[k], f)                 # subpixel: exact, smooth in f
    I       = far_field_intensity(probe_k * window)      # sum_k |F(P_k O)|^2 / N^2

Subpixel position moves only the probe (by a Fourier phase ramp), so position gradients are
exact and smooth; the object is never interpolated. See docs/DESIGN.md, "Refinement".
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pinn.ops.gather_windows import gather_windows
from pinn.ops.modes import orthogonalize_modes
from pinn.ops.ptycho_intensity import ptycho_intensity
from pinn.refine.positions import (affine_basis, newton_step, position_fisher, project_offsets,
                                   project_offsets_affine)

POSITION_METHODS = ("adam", "newton")
POSITION_CONSTRAINTS = ("affine", "shift")


class Refiner(nn.Module):
    """Object, probe modes and position offsets of one scan.

    Args:
        positions: ``(M, 2)`` float, (y, x) canvas pixels of each window's centre pixel
            (already shifted onto the canvas; see :func:`canvas_frame`).
        canvas_shape: ``(H, W)`` of the object canvas; every window must fit inside it with
            ``margin`` pixels to spare.
        modes: ``(K, N, N)`` complex probe modes in the data's units (power-matched).
        obj: optional ``(H, W)`` complex start; ``None`` starts flat (1 + 0j).
        lr_scales: learning rates of ``object``, ``probe`` and ``positions`` relative to the
            schedule's rate (the engine multiplies). The probe's is further multiplied by the
            probe's peak amplitude so that probes in any units refine alike.
        refine_probe: train the modes (from epoch ``probe_warmup`` on).
        probe_warmup: epochs before the modes start to move: the object first takes the
            shape the starting probe implies (moving both from the first step let them trade
            errors: see docs/DESIGN.md, "Refinement").
        refine_positions: train the offsets from epoch ``position_warmup`` on, once the
            object has settled (``position_plateau``).
        position_warmup: epochs before positions may start to move.
        position_plateau: positions start at the first epoch (from ``position_warmup`` on)
            after one whose mean deviance fell by less than this fraction of the one before:
            moved against an object that is still far from explaining the data at the
            recorded positions, they drift (docs/DESIGN.md, "Refinement"). ``None``: start at
            ``position_warmup`` whatever the deviance. Needs the loss to report each step's
            deviance (:meth:`observe_deviance`, as ``refine_loss`` does).
        max_position_step: the largest change of an offset within one epoch (pixels).
        orthogonalize: orthogonalise and sort the modes at the start of every epoch.
        probe_support: optional ``(N, N)`` real mask; after every step the modes are
            multiplied by it (a support constraint, e.g. a disk).
        fix_probe_power: after every step, rescale the modes to their starting total power
            (a power constraint: the dose is then carried by the probe alone).
        position_method: ``"newton"``: after every step, each position of the batch takes a
            Newton step on its own likelihood (gradient over Fisher information,
            :mod:`pinn.refine.positions`), times ``position_damping``; this assumes the loss
            is the mean Poisson NLL over the batch's pixels (``refine_loss``). ``"adam"``:
            the optimiser moves the offsets at the ``positions`` rate like any parameter.
        position_damping: the fraction of the Newton step taken.
        position_constraint: what part of the offsets is removed after every step, as not
            identifiable: ``"affine"`` (a common shift, scale, rotation and shear of the
            positions: :func:`pinn.refine.positions.affine_basis`) or ``"shift"`` (only the
            common shift).
    """

    def __init__(self, positions: torch.Tensor, canvas_shape: tuple[int, int],
                 modes: torch.Tensor, obj: torch.Tensor | None = None, *,
                 lr_scales: dict[str, float] | None = None, refine_probe: bool = True,
                 probe_warmup: int = 0,
                 refine_positions: bool = False, position_warmup: int = 2,
                 position_plateau: float | None = None,
                 max_position_step: float = 1.0, orthogonalize: bool = True,
                 probe_support: torch.Tensor | None = None,
                 fix_probe_power: bool = False, position_method: str = "newton",
                 position_damping: float = 0.5, position_constraint: str = "affine") -> None:
        super().__init__()
        if modes.dim() != 3 or modes.shape[-1] != modes.shape[-2]:
            raise ValueError(f"modes have shape {tuple(modes.shape)}; expected (K, N, N)")
        self.size = int(modes.shape[-1])
        height, width = (int(s) for s in canvas_shape)
        if obj is None:
            obj = torch.ones(height, width, dtype=torch.complex64)
        if tuple(obj.shape) != (height, width):
            raise ValueError(f"the object start has shape {tuple(obj.shape)}; the canvas is "
                             f"{height} x {width}")
        self.object_real = nn.Parameter(torch.view_as_real(obj.to(torch.complex64)).clone())
        self.probe_real = nn.Parameter(torch.view_as_real(modes.to(torch.complex64)).clone(),
                                       requires_grad=refine_probe)
        self.register_buffer("positions_initial", positions.to(torch.float32).clone())
        self.offsets = nn.Parameter(torch.zeros_like(self.positions_initial),
                                    requires_grad=False)
        # the offsets at the start of the current epoch (the per-epoch step cap is relative to
        # them) and which epoch they and the modes' orthogonalisation belong to: kept in the
        # state dict so that a resumed epoch does not redo or reset them
        self.register_buffer("offsets_anchor", torch.zeros_like(self.positions_initial))
        self.register_buffer("epoch_prepared", torch.tensor(-1, dtype=torch.int64))
        # the running epoch's deviance (sum, count), the last two finished epochs' means and
        # the epoch the positions started at (-1: not yet), for position_plateau
        self.register_buffer("deviance_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("deviance_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("epoch_deviances", torch.full((2,), float("nan"),
                                                           dtype=torch.float64))
        self.register_buffer("positions_start", torch.tensor(-1, dtype=torch.int64))
        self.lr_scales = {"object": 1.0, "probe": 1.0, "positions": 1.0, **(lr_scales or {})}
        self.refine_probe = refine_probe
        self.probe_warmup = probe_warmup
        self.refine_positions = refine_positions
        self.position_warmup = position_warmup
        if position_plateau is not None and not 0 < position_plateau < 1:
            raise ValueError(f"position_plateau is {position_plateau}; use a fraction in (0, 1) "
                             "or None")
        self.position_plateau = position_plateau
        self.max_position_step = max_position_step
        self.orthogonalize = orthogonalize
        if probe_support is not None and tuple(probe_support.shape) != tuple(modes.shape[-2:]):
            raise ValueError(f"the probe support has shape {tuple(probe_support.shape)}; the "
                             f"modes are {tuple(modes.shape[-2:])}")
        self.register_buffer("probe_support", None if probe_support is None
                             else probe_support.to(torch.float32))
        self.fix_probe_power = fix_probe_power
        self.register_buffer("probe_power", modes.abs().square().sum().to(torch.float32))
        if position_method not in POSITION_METHODS:
            raise ValueError(f"position_method is {position_method!r}; use one of "
                             f"{POSITION_METHODS}")
        self.position_method = position_method
        self.position_damping = position_damping
        if position_constraint not in POSITION_CONSTRAINTS:
            raise ValueError(f"position_constraint is {position_constraint!r}; use one of "
                             f"{POSITION_CONSTRAINTS}")
        self.position_constraint = position_constraint
        # derived from positions_initial, so not saved
        self.register_buffer("affine_basis", affine_basis(positions)
                             if refine_positions and position_constraint == "affine" else None,
                             persistent=False)
        # (batch indices, Fisher information) of the step in flight: set by forward, used and
        # cleared by after_step of the same step, so never part of a checkpoint
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None
        low = positions.min(dim=0).values - self.size // 2
        high = positions.max(dim=0).values - self.size // 2 + self.size
        if bool((low < 0).any()) or high[0] > height or high[1] > width:
            raise ValueError("the canvas is too small for the scan's windows")
        self._bounds = (self.size // 2, height - self.size + self.size // 2,
                        width - self.size + self.size // 2)

    # --- views ------------------------------------------------------------------------------
    @property
    def object(self) -> torch.Tensor:
        """``(H, W)`` complex64 canvas (a view of the trained parameter)."""
        return torch.view_as_complex(self.object_real)

    @property
    def modes(self) -> torch.Tensor:
        """``(K, N, N)`` complex64 probe modes (a view of the trained parameter)."""
        return torch.view_as_complex(self.probe_real)

    @property
    def positions(self) -> torch.Tensor:
        """``(M, 2)`` float32 current canvas positions: initial plus offsets."""
        return self.positions_initial + self.offsets

    # --- the engine's hooks (pinn/engine/hooks.py) ----------------------------------------
    def optimizer_groups(self) -> list[dict]:
        peak = float(self.modes.detach().abs().max())
        groups = [
            {"params": [self.object_real], "lr_scale": self.lr_scales["object"]},
            {"params": [self.probe_real], "lr_scale": self.lr_scales["probe"] * peak},
        ]
        if self.position_method == "adam":
            groups.append({"params": [self.offsets], "lr_scale": self.lr_scales["positions"]})
        return groups

    def on_epoch_start(self, epoch: int) -> None:
        if int(self.epoch_prepared) != epoch:  # not resumed inside this epoch
            with torch.no_grad():
                self._close_epoch()
                if (self.refine_positions and int(self.positions_start) < 0
                        and epoch >= self.position_warmup and self._settled()):
                    self.positions_start.fill_(epoch)
                if (self.orthogonalize and self.refine_probe and self.modes.shape[0] > 1
                        and epoch):
                    self.probe_real.copy_(torch.view_as_real(orthogonalize_modes(self.modes)))
                self.offsets_anchor.copy_(self.offsets)
                self.epoch_prepared.fill_(epoch)
        self.offsets.requires_grad_(0 <= int(self.positions_start) <= epoch)
        self.probe_real.requires_grad_(self.refine_probe and epoch >= self.probe_warmup)

    def observe_deviance(self, deviance: torch.Tensor) -> None:
        """Add one step's mean deviance per pixel to the running epoch's (for
        ``position_plateau``)."""
        self.deviance_sum += deviance.detach().to(self.deviance_sum.dtype)
        self.deviance_count += 1

    def _close_epoch(self) -> None:
        if int(self.deviance_count):
            mean = self.deviance_sum / self.deviance_count
            self.epoch_deviances.copy_(torch.stack([self.epoch_deviances[1], mean]))
        self.deviance_sum.zero_()
        self.deviance_count.zero_()

    def _settled(self) -> bool:
        if self.position_plateau is None:
            return True
        before, last = (float(d) for d in self.epoch_deviances)
        if not (math.isfinite(before) and math.isfinite(last) and before > 0):
            return False
        return (before - last) / before < self.position_plateau

    def after_step(self) -> None:
        if self.probe_real.requires_grad:
            self._constrain_probe()
        pending, self._pending = self._pending, None
        if not self.offsets.requires_grad:
            return
        if self.position_method == "newton":
            if pending is not None and self.offsets.grad is not None:
                index, fisher = pending
                step = newton_step(self.offsets.grad[index], fisher)
                self.offsets.index_add_(0, index,
                                        (self.position_damping * step).to(torch.float32))
            # the optimiser does not hold the offsets, so its zero_grad would not clear this
            self.offsets.grad = None
        # no common shift (or no affine part: not identifiable) and the per-epoch cap
        if self.affine_basis is not None:
            self.offsets.copy_(project_offsets_affine(self.offsets, self.offsets_anchor,
                                                      self.max_position_step, self.affine_basis))
        else:
            self.offsets.copy_(project_offsets(self.offsets, self.offsets_anchor,
                                               self.max_position_step))

    def _constrain_probe(self) -> None:
        if self.probe_support is not None:
            self.probe_real.mul_(self.probe_support[None, :, :, None])
        if self.fix_probe_power:
            power = self.probe_real.square().sum()
            self.probe_real.mul_((self.probe_power / power.clamp_min(1e-30)).sqrt())

    # --- the forward model -----------------------------------------------------------------
    def windows(self, rounded: torch.Tensor) -> torch.Tensor:
        """``(B, N, N)`` complex object windows whose centre pixel is at ``rounded`` (B, 2)."""
        return gather_windows(self.object, rounded.long() - self.size // 2, self.size)

    def forward(self, index: torch.Tensor, centered: bool = True) -> torch.Tensor:
        """Expected counts ``(B, N, N)`` float32 of the scan points ``index`` ``(B,)`` int64,
        zero frequency at the centre (``centered``) or at pixel (0, 0)."""
        newton = (self.position_method == "newton" and self.offsets.requires_grad
                  and torch.is_grad_enabled())
        if newton:
            self.offsets.grad = None  # one forward per step: no gradient of a skipped step
        position = self.positions_initial[index] + self.offsets[index]  # (B, 2)
        low, high_y, high_x = self._bounds
        rounded = position.detach().round()
        rounded = torch.stack([rounded[:, 0].clamp(low, high_y), rounded[:, 1].clamp(low, high_x)],
                              dim=1)
        fraction = position - rounded  # carries the offsets' gradient
        windows = self.windows(rounded)
        intensity = ptycho_intensity(windows, self.modes, fraction, centered)
        if newton:
            with torch.no_grad():
                unshifted = intensity if not centered else torch.fft.ifftshift(
                    intensity, dim=(-2, -1))
                fisher = position_fisher(windows.detach(), self.modes[0].detach(),
                                         unshifted.detach())
                # in the loss's units: refine_loss is the mean over the batch's pixels
                self._pending = (index, fisher / (index.shape[0] * self.size * self.size))
        return intensity
