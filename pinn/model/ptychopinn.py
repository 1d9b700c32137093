"""The PtychoPINN module: a generator network followed by the differentiable physics.

``amplitude (B, C, N, N)`` in photon units and the group members' ``offsets (B, C, 2)`` go in;
the reconstructed object and the predicted diffraction come out. The chain (the reference's,
docs/DESIGN.md §7.4)::

    x        = amplitude / scale                       # the network sees normalised data
    a, b     = generator(x)                            # (B, C_out, N, N) each
    patches  = a * exp(i b)  or  a + i b               # complex64 (amp_phase / real_imag)
    canvas   = merge(patches, offsets)                 # (B, P, P) group canvas (object_big)
    object   = center_crop(canvas, N)                  # (B, N, N)
    waves    = illuminate(extract(canvas, offsets)[:, :, None], modes[, disk])  # (B, C, K, N, N)
    pred_amp = scale * far_field_amplitude(waves)      # (B, C, N, N): sqrt(sum_k |F(P_k O)|**2)

With a single probe mode (K = 1) the last two lines are ``scale * diffract(illuminate(...))``,
the reference's forward, bit for bit; with K > 1 incoherent modes the predicted intensity is
the sum of the modes' intensities (a mixed-state probe).

Member ``c`` sits on the group canvas with its centre pixel at ``P//2 + offsets[:, c]``
(offsets are position - group centroid, (y, x) pixels). Deliberate deviations from the
reference (docs/DESIGN.md §8, items 1, 2, 3 and 6): the merge is per group at every batch size,
its coverage counts the window the decoder actually fills, offsets are not re-centred by a
batch mean, and the probe and intensity scale train when configured.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from pinn import ops
from pinn.model.fno import FNO
from pinn.model.generator import build_generator
from pinn.model.output import to_complex
from pinn.model.unet import UNet

if TYPE_CHECKING:  # the model reads a config's fields but never imports the config module
    from pinn.config import ModelConfig


#: The relaxation of the projection steps (:func:`pinn.ops.project_amplitudes`; 1 is plain error
#: reduction, below 2 a step never increases the misfit). Over-relaxed steps converge faster:
#: at 32 steps 1.9 gave SSIM 0.984 / 0.896 on the simulated grf scan against 0.979 / 0.889 at
#: 1.5, and 0.706 / 0.697 on siemens against 0.681 / 0.665 (docs/DESIGN.md §11).
PROJECTION_STEP_SIZE = 1.9


class ModelOutput(NamedTuple):
    """What :class:`PtychoPINN` returns.

    object: ``(B, N, N)`` complex64, the centre of each group canvas (the patch at gridsize 1).
    amplitude: ``(B, C, N, N)`` float32 predicted diffraction amplitude, photon units.
    intensity: ``(B, C, N, N)`` float32, ``amplitude**2`` (expected counts).
    """

    object: torch.Tensor
    amplitude: torch.Tensor
    intensity: torch.Tensor


class PtychoPINN(nn.Module):
    """Generator + physics. Build it with :func:`build_model`.

    Args:
        generator: maps normalised amplitudes ``(B, C, N, N)`` to a pair of real maps
            ``(B, C_out, N, N)`` (:func:`make_generator`).
        probe: ``(N, N)`` complex, already normalised (see :func:`pinn.ops.normalize_probe`),
            or ``(K, N, N)`` incoherent modes (:func:`pinn.ops.normalize_probe_modes`); a
            ``(1, N, N)`` stack is stored as ``(N, N)``.
        intensity_scale: photon units per normalised amplitude unit (> 0).
        padded_size: side P of the group canvas.
        object_big: merge one decoded patch per member (else share one patch).
        coverage_window: ``(N, N)`` weights the merge counts per patch pixel.
        merge_eps: added to the merge coverage.
        probe_mask: optional ``(N, N)`` exit-wave mask.
        probe_trainable, intensity_scale_trainable: make those parameters instead of buffers.
        config: the :class:`~pinn.config.ModelConfig` the arguments above were built from,
            kept as :attr:`config`. The module never reads it; archives save it and inference
            groups the scan with its gridsize. It must agree with the arguments.
        output: what the generator's pair means, ``"amp_phase"`` or ``"real_imag"``
            (:mod:`pinn.model.output`).

    Raises:
        ValueError: a non-positive intensity scale, or ``config`` that disagrees with the
            arguments.
        TypeError: ``config`` is not a model configuration.
    """

    config: ModelConfig

    def __init__(self, generator: nn.Module, probe: torch.Tensor, intensity_scale: float,
                 padded_size: int, object_big: bool, coverage_window: torch.Tensor,
                 merge_eps: float, probe_mask: torch.Tensor | None = None,
                 probe_trainable: bool = False, intensity_scale_trainable: bool = False,
                 output: str = "amp_phase", *, config: ModelConfig) -> None:
        super().__init__()
        if output not in ("amp_phase", "real_imag"):
            raise ValueError(f"output is {output!r}; use 'amp_phase' or 'real_imag'")
        self.output = output
        if not (math.isfinite(intensity_scale) and intensity_scale > 0):
            raise ValueError(f"intensity_scale is {intensity_scale}; it must be finite and > 0")
        if probe.dim() == 3 and probe.shape[0] == 1:
            probe = probe[0]  # one mode is stored as the single-mode model stores its probe
        if probe.dim() not in (2, 3) or probe.shape[-1] != probe.shape[-2]:
            raise ValueError(f"probe has shape {tuple(probe.shape)}; expected (N, N) or "
                             "(K, N, N) probe modes")
        _check_config(config, size=probe.shape[-1], padded_size=padded_size,
                      probe_modes=1 if probe.dim() == 2 else probe.shape[0],
                      object_big=object_big, merge_eps=merge_eps,
                      coverage_window=coverage_window.to(torch.float32),
                      probe_mask=probe_mask is not None, probe_trainable=probe_trainable,
                      intensity_scale_trainable=intensity_scale_trainable, output=output)
        self.config = config
        # channels-last weights make oneDNN skip a layout reorder around every convolution
        # (1.6x faster training steps on CPU); values, state_dict keys and shapes are unchanged
        self.generator = generator.to(memory_format=torch.channels_last)
        self.size = probe.shape[-1]
        self.padded_size = padded_size
        self.object_big = object_big
        self.merge_eps = merge_eps
        # The probe is stored as real (N, N, 2) (modes: (K, N, N, 2)) so that every optimiser,
        # DDP and safetensors handle it; `probe` views it as complex.
        probe_real = torch.view_as_real(probe.to(torch.complex64)).clone()
        log_scale = torch.tensor(math.log(intensity_scale), dtype=torch.float32)
        if probe_trainable:
            self.probe_real = nn.Parameter(probe_real)
        else:
            self.register_buffer("probe_real", probe_real)
        if intensity_scale_trainable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.register_buffer("coverage_window", coverage_window.to(torch.float32))
        self.register_buffer("probe_mask", None if probe_mask is None
                             else probe_mask.to(torch.float32))

    @property
    def probe(self) -> torch.Tensor:
        """``(N, N)`` complex64 probe, or ``(K, N, N)`` modes when the model has K > 1 (a view
        of the stored real tensor)."""
        return torch.view_as_complex(self.probe_real)

    @property
    def probe_modes(self) -> torch.Tensor:
        """``(K, N, N)`` complex64 probe modes (K = 1 for a single probe; a view)."""
        probe = self.probe
        return probe[None] if probe.dim() == 2 else probe

    @property
    def intensity_scale(self) -> torch.Tensor:
        """Scalar float32 tensor: photon units per normalised amplitude unit."""
        return self.log_scale.exp()

    def canvas_positions(self, offsets: torch.Tensor) -> torch.Tensor:
        """Group-canvas positions ``(B, C, 2)`` of the members' centre pixels."""
        return offsets.to(torch.float32) + (self.padded_size // 2)

    def illumination(self, offsets: torch.Tensor) -> torch.Tensor:
        """How strongly each pixel of the ``(B, N, N)`` group object is lit: the probe's
        intensity ``sum_k |probe_k|**2`` (peak 1) placed at every member's position on the group
        canvas and summed, then cropped like the object. Used to weight the stitching of a
        scan."""
        intensity = self.probe_modes.abs().square().sum(dim=0)  # (N, N)
        intensity = intensity / intensity.max().clamp_min(1e-30)
        positions = self.canvas_positions(offsets)  # (B, C, 2)
        spots = intensity.expand(*positions.shape[:2], -1, -1)  # (B, C, N, N)
        canvas = ops.reassemble_patches(spots, positions, (self.padded_size, self.padded_size))
        return ops.center_crop(canvas, self.size)  # (B, N, N)

    def decode(self, amplitude: torch.Tensor) -> torch.Tensor:
        """Object patches ``(B, C_out, N, N)`` complex64 from amplitudes ``(B, C, N, N)``."""
        first, second = self.generator(amplitude / self.intensity_scale)
        return to_complex(first, second, self.output)  # float32 physics also under autocast

    def merge(self, patches: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Group canvases ``(B, P, P)`` from object patches and canvas positions."""
        size = (self.padded_size, self.padded_size)
        if not self.object_big:
            return ops.center_pad(patches[:, 0], size)
        canvas, _ = ops.stitch(patches, positions, size, eps=self.merge_eps,
                               window=self.coverage_window)
        return canvas

    def footprint(self, positions: torch.Tensor) -> torch.Tensor:
        """How much of the network's object each group-canvas pixel holds: ``(B, P, P)``
        float32, the merge's coverage (0 where no decoded patch reaches)."""
        size = (self.padded_size, self.padded_size)
        batch, count = positions.shape[:2]
        if not self.object_big:
            ones = torch.ones(batch, self.size, self.size, device=positions.device)
            return ops.center_pad(ones, size)
        window = self.coverage_window.expand(batch, count, -1, -1)
        return ops.reassemble_patches(window, positions, size)

    def forward(self, amplitude: torch.Tensor, offsets: torch.Tensor, *,
                steps: int = 0, blur_px: float | None = None) -> ModelOutput:
        """Reconstruct and predict.

        Args:
            amplitude: ``(B, C, N, N)`` measured diffraction amplitude in photon units
                (zero frequency at the centre).
            offsets: ``(B, C, 2)`` member position minus group centroid, (y, x) pixels.
            steps: error-reduction updates of each group canvas against ``amplitude``
                (:func:`pinn.ops.project_amplitudes`) between the merge and the object. Training
                uses 0 (the network alone); inference ``config.projection_steps``
                (docs/DESIGN.md §11).
            blur_px: with steps, the standard deviation (pixels) of the Gaussian blur
                (:func:`pinn.ops.gaussian_blur`) of each group canvas before them (default:
                ``config.blur_px``), a mean over the pixels the network's patches
                fill (:meth:`footprint`); unused without steps.
        """
        positions = self.canvas_positions(offsets)  # (B, C, 2)
        patches = self.decode(amplitude)  # (B, C_out, N, N)
        canvas = self.merge(patches, positions)  # (B, P, P)
        if steps:
            blur_px = self.config.blur_px if blur_px is None else blur_px
            start = ops.gaussian_blur(canvas, blur_px, weights=self.footprint(positions))
            canvas = ops.project_amplitudes(start, positions,
                                            self.probe_modes, amplitude / self.intensity_scale,
                                            steps, self.probe_mask,
                                            step_size=PROJECTION_STEP_SIZE)
        obj = ops.center_crop(canvas, self.size)  # (B, N, N)
        patches = ops.extract_patches(canvas, positions, self.size)  # (B, C, N, N)
        waves = ops.illuminate(patches[:, :, None], self.probe_modes,
                               self.probe_mask)  # (B, C, K, N, N)
        pred_amp = self.intensity_scale * ops.far_field_amplitude(waves)  # (B, C, N, N)
        return ModelOutput(obj, pred_amp, pred_amp.square())


def _check_config(config: ModelConfig, **arguments: object) -> None:
    """The physics arguments must be what ``config`` describes, since an archive rebuilds the
    model from the config alone. (The generator is not compared here; weights of another
    generator fail the archive's strict load. The output parameterisation is compared: both
    fit the same weights.)"""
    try:
        expected = {"size": config.size_px, "padded_size": config.padded_size_px,
                    "object_big": config.object_big, "merge_eps": config.merge_eps,
                    "coverage_window": coverage_window(config),
                    "probe_mask": config.probe_mask, "probe_trainable": config.probe_trainable,
                    "intensity_scale_trainable": config.intensity_scale_trainable,
                    "output": config.output, "probe_modes": config.probe_modes}
    except AttributeError:
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}") from None

    def same(a: object, b: object) -> bool:
        if isinstance(a, torch.Tensor):
            return a.shape == b.shape and bool(torch.equal(a, b))
        return a == b

    wrong = [key if isinstance(value, torch.Tensor) else f"{key}={value!r} "
             f"(config: {expected[key]!r})"
             for key, value in arguments.items() if not same(value, expected[key])]
    if wrong:
        raise ValueError(f"the model's arguments disagree with its config: {', '.join(wrong)}; "
                         "build it with build_model(config)")


def coverage_window(config: ModelConfig) -> torch.Tensor:
    """The ``(N, N)`` window the decoder fills: its centre N/2 square, unless the border
    branch (``probe_big``) or a full-patch decoder (``pad_object=False``) fills all of it."""
    n = config.size_px
    if config.pad_object and not config.probe_big:
        window = torch.zeros(n, n)
        window[n // 4:n - n // 4, n // 4:n - n // 4] = 1
        return window
    return torch.ones(n, n)


def make_generator(config: ModelConfig) -> nn.Module:
    """The generator ``config.generator`` names (``"cnn"``, ``"unet"`` or ``"fno"``), sized
    and configured by ``config``: normalised amplitudes ``(B, C, N, N)`` -> a pair of real maps
    ``(B, C_out, N, N)`` as ``config.output`` describes."""
    out_channels = config.channels if config.object_big else 1
    if config.generator == "cnn":
        return build_generator(config)
    # the CNN's pad_object without its border branch fills only the centre window
    options = dict(size_px=config.size_px, channels=config.channels, out_channels=out_channels,
                   width=config.width, output=config.output,
                   amp_activation=config.amp_activation,
                   centre_only=config.pad_object and not config.probe_big)
    if config.generator == "unet":
        return UNet(**options)
    if config.generator == "fno":
        return FNO(modes=config.fno_modes, **options)
    raise ValueError(f"unknown generator {config.generator!r}")


def build_model(config: ModelConfig, probe: torch.Tensor | None = None,
                intensity_scale: float = 1.0) -> PtychoPINN:
    """A :class:`PtychoPINN` for ``config``.

    Args:
        config: the model configuration.
        probe: ``(N, N)`` complex probe guess as measured, or ``(J, N, N)`` incoherent modes;
            ``None`` uses the reference's default probe. It becomes ``config.probe_modes = K``
            modes: with J < K, Hermite-like modes of the dominant one are added
            (:func:`pinn.ops.add_probe_modes`, ``config.probe_mode_power`` of the power
            each); with J > K the K strongest are kept, strongest first (for K = 1 the
            dominant mode). Then it is normalised with ``config.probe_scale``
            (:func:`pinn.ops.normalize_probe`, one common factor for all modes).
        intensity_scale: photon units per normalised amplitude unit
            (:func:`pinn.data.intensity_scale`).

    Raises:
        ValueError: when the probe (or its modes) is not ``N x N``.
    """
    n = config.size_px
    if probe is None:
        probe = ops.default_probe(n)
    if probe.dim() not in (2, 3) or tuple(probe.shape[-2:]) != (n, n) or probe.numel() == 0:
        raise ValueError(f"probe has shape {tuple(probe.shape)}; the model needs an {n} x {n} "
                         f"probe or (K, {n}, {n}) probe modes (the reference silently "
                         "substitutes its default probe here)")
    return PtychoPINN(
        generator=make_generator(config),
        probe=initial_probe(probe, config),
        intensity_scale=intensity_scale,
        padded_size=config.padded_size_px,
        object_big=config.object_big,
        coverage_window=coverage_window(config),
        merge_eps=config.merge_eps,
        probe_mask=ops.disk_mask(n) if config.probe_mask else None,
        probe_trainable=config.probe_trainable,
        intensity_scale_trainable=config.intensity_scale_trainable,
        output=config.output,
        config=config,
    )


def select_probe_modes(probe: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """A probe guess ``(N, N)`` or ``(J, N, N)`` as the modes a model for ``config`` starts
    from, not yet normalised (see :func:`build_model`): ``(N, N)`` complex64 for one mode, else
    ``(K, N, N)``."""
    probe = probe.to(torch.complex64)
    k = config.probe_modes
    modes = probe[None] if probe.dim() == 2 else probe  # (J, N, N)
    if modes.shape[0] > k:
        power = ops.mode_powers(modes)
        modes = modes[torch.argsort(power, descending=True, stable=True)[:k]]
    if k == 1:
        return modes[0]  # (N, N), the reference's single probe
    if modes.shape[0] < k:
        modes = ops.add_probe_modes(modes, k, config.probe_mode_power)
    return modes  # (K, N, N)


def initial_probe(probe: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The normalised probe of a model for ``config`` from a guess ``(N, N)`` or
    ``(J, N, N)``: :func:`select_probe_modes` divided by one positive number
    (:func:`pinn.ops.normalize_probe` or, for modes, :func:`pinn.ops.normalize_probe_modes`
    with ``config.probe_scale``)."""
    start = select_probe_modes(probe, config)
    if start.dim() == 2:
        return ops.normalize_probe(start, config.probe_scale)
    return ops.normalize_probe_modes(start, config.probe_scale)
