"""Configuration: frozen, flat, typed dataclasses, validated on construction, saved as JSON.

Three groups, one per stage of the pipeline:

- :class:`ModelConfig`: the network and the physics (patch size, gridsize, decoder options,
  probe handling). It is stored in model archives.
- :class:`DataConfig`: how a scan is read, grouped and normalised.
- :class:`TrainingConfig`: optimiser, schedule, precision and checkpointing.

:class:`Config` bundles the three. ``to_dict``/``from_dict`` round-trip through JSON; unknown
keys are rejected with a clear message and :func:`upgrade` turns dictionaries written by older
schema versions into the current one. Reading a configuration from a file and applying
``SECTION.KEY=VALUE`` settings is :mod:`pinn.config_files`'. docs/CONFIG.md lists every field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from pinn.errors import ConfigError

SCHEMA_VERSION = 7

SUPPORTED_SIZES = (64, 128, 256)
AMP_ACTIVATIONS = ("sigmoid", "swish", "softplus", "relu")
GENERATORS = ("cnn", "unet", "fno")
OUTPUTS = ("amp_phase", "real_imag")
PRECISIONS = ("off", "bf16", "fp16")
SCHEDULES = ("plateau", "cosine")


MAX_SEED = 2**63 - 1

_EXPECTED = {"int": "an int", "float": "a finite number", "bool": "true or false",
             "str": "a string"}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_types(config: Any, section: str) -> None:
    """Check every field against its annotation (``int``, ``float``, ``bool``, ``str``, each
    optionally ``| None``) before any value check: a JSON ``"false"`` is not False, ``64.0``
    is not a patch size, ``true`` is not a gridsize. Floats must be finite; ints given for
    float fields become floats, NumPy scalars become Python ones."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind, _, rest = str(f.type).partition("|")
        kind = kind.strip()
        if rest.strip() == "None" and value is None:
            continue
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            converted = int(value) if ok else None
        elif kind == "float":
            ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and math.isfinite(value))
            converted = float(value) if ok else None
        else:
            ok = isinstance(value, str)
        if not ok:
            also = " or null (unset)" if rest.strip() == "None" else ""
            raise ConfigError(f"{section}.{f.name} is {value!r} ({type(value).__name__}); "
                              f"expected {_EXPECTED[kind]}{also}")
        if kind in ("int", "float"):
            object.__setattr__(config, f.name, converted)


def _check_seed(name: str, seed: int) -> None:
    _require(0 <= seed <= MAX_SEED, f"{name} is {seed}; use an int from 0 to 2**63 - 1")


#: The projection settings at gridsize 2 and more (docs/DESIGN.md §11.1-11.3); gridsize 1
#: defaults to 0 for both.
PROJECTION_BLUR_PX = 4.0
PROJECTION_SYNC_ROUNDS = 32
#: Passes of error reduction over the whole scan after stitching, at every gridsize
#: (docs/DESIGN.md §11.4).
PROJECTION_PASSES = 4


@dataclass(frozen=True)
class ModelConfig:
    """The PtychoPINN network and its physics.

    Attributes:
        size_px: patch side N in pixels (64, 128 or 256).
        gridsize: groups hold ``gridsize**2`` neighbouring patterns (channels of the network).
        generator: the network that maps diffraction to object patches: ``"cnn"`` (the
            reference's encoder-decoder), ``"unet"`` (residual U-Net with skip connections) or
            ``"fno"`` (Fourier neural operator).
        output: the network predicts amplitude and phase (``"amp_phase"``, the reference's
            sigmoid / ``pi tanh`` heads) or the real and imaginary parts (``"real_imag"``,
            linear heads).
        n_filters_scale: multiplies every filter count of the CNN. 1 (pinn's default): a
            quarter of the reference's parameters and about a third of its step time on CPU,
            which with ``learning_rate`` 2e-3 reaches a better SSIM in the same training time
            (docs/DESIGN.md §10); 2 is the reference's (:func:`reference_config`).
        width: channels of the U-Net's first level and of the FNO's hidden layers.
        fno_modes: Fourier modes per axis kept by each FNO spectral convolution.
        amp_activation: output activation of the amplitude head (``output="amp_phase"``).
        object_big: decode one patch per group member and merge them on a group canvas
            (else a single patch is decoded and shared by all members).
        probe_big: add the decoder's border branch that fills the patch outside its centre.
        pad_object: decode the centre N/2 window and zero-pad it (else decode the full patch).
        probe_mask: multiply exit waves by the hard disk ``r < N/4``.
        probe_scale: the reference's probe normalisation divisor (4.0).
        offset_px: the spacing assumed between a group's patterns in pixels; with
            ``max_position_jitter_px`` it sizes the group canvas as the reference does:
            ``N + (gridsize - 1) * offset_px + max_position_jitter_px``.
        max_position_jitter_px: the group canvas's margin, in pixels, for patterns off that
            spacing.
        merge_eps: added to the merge coverage before dividing (the reference's 0.001).
        probe_trainable: refine the probe during training (a parameter, not a buffer).
        probe_modes: number K of mutually incoherent probe modes; the predicted intensity is
            the sum over modes. A probe guess with fewer modes gets Hermite-like modes of its
            dominant one (``pinn.ops.add_probe_modes``); one with more keeps its K
            strongest. 1 is the single coherent probe of the reference.
        probe_mode_power: share of the total probe power given to each added mode.
        intensity_scale_trainable: train the intensity scale (a parameter, not a buffer).
        projection_steps: at inference (:func:`pinn.reconstruct.reconstruct`), each group
            canvas the network decodes takes this many error-reduction updates against the
            group's own measured amplitudes (:func:`pinn.ops.project_amplitudes`) before its
            object is stitched. The network supplies the low-resolution object and its phase,
            the updates the fine detail the network learns slowest (docs/DESIGN.md §11).
            Training fits the network alone. 0 is the reference's pure network output
            (:func:`reference_config`).
        projection_blur_px: (None, the default: 4 at gridsize 2 and more, 0 at gridsize 1,
            where one pattern constrains its canvas too little for the network's detail to be
            given up; docs/DESIGN.md §11.3) before its projection steps each group canvas is
            blurred
            (:func:`pinn.ops.gaussian_blur`, this standard deviation in pixels): the steps
            recover the detail the group's own patterns determine, and the blur keeps of the
            network only what they cannot, the smooth part of the object (its low-resolution
            amplitude and phase), without the network's fine errors, which the steps would
            otherwise keep. 0 starts the steps from the network's canvas as it is. Unused
            without projection steps (docs/DESIGN.md §11).
        projection_sync_rounds: (None, the default: 32 at gridsize 2 and more, 0 at gridsize
            1; docs/DESIGN.md §11.3) after the projection steps each group's object carries a
            constant phase of its own (the patterns do not fix it); before stitching, this many
            rounds of phase synchronisation (:func:`pinn.ops.phase_offsets`) make the groups
            agree where they overlap. Keeps every group's object in memory until the end of
            the scan (about 15 bytes per stitched pixel of every group). 0: stitch them as they
            are. Unused without projection steps (docs/DESIGN.md §11.2).
        projection_passes: after stitching, this many passes of error reduction over the
            whole scan refine the stitched object against every measured pattern (blocks of
            positions in a seeded random order, :func:`pinn.ops.project_amplitudes` on the
            scan's canvas). Unlike the per-group steps they share what overlapping groups
            measure, which the per-group steps cannot (docs/DESIGN.md §11.4). 0: the stitched
            object as it is.
    """

    size_px: int = 64
    gridsize: int = 1
    generator: str = "cnn"
    output: str = "amp_phase"
    n_filters_scale: int = 1
    width: int = 32
    fno_modes: int = 16
    amp_activation: str = "sigmoid"
    object_big: bool = True
    probe_big: bool = True
    pad_object: bool = True
    probe_mask: bool = False
    probe_scale: float = 4.0
    offset_px: int = 4
    max_position_jitter_px: int = 10
    merge_eps: float = 0.001
    probe_trainable: bool = False
    probe_modes: int = 1
    probe_mode_power: float = 0.02
    intensity_scale_trainable: bool = False
    projection_steps: int = 16
    projection_blur_px: float | None = None
    projection_sync_rounds: int | None = None
    projection_passes: int = PROJECTION_PASSES

    def __post_init__(self) -> None:
        _check_types(self, "model")
        _require(self.size_px in SUPPORTED_SIZES,
                 f"size_px is {self.size_px}; the network supports N in {SUPPORTED_SIZES} "
                 "(crop or bin the diffraction patterns to one of these)")
        _require(isinstance(self.gridsize, int) and 1 <= self.gridsize <= 4,
                 f"gridsize is {self.gridsize!r}; use an int from 1 to 4")
        _require(self.generator in GENERATORS,
                 f"generator is {self.generator!r}; use one of {GENERATORS}")
        _require(self.output in OUTPUTS, f"output is {self.output!r}; use one of {OUTPUTS}")
        _require(isinstance(self.n_filters_scale, int) and self.n_filters_scale >= 1,
                 f"n_filters_scale is {self.n_filters_scale!r}; use a positive int")
        _require(self.width >= 4 and self.width % 4 == 0,
                 f"width is {self.width}; use a positive multiple of 4")
        _require(1 <= self.fno_modes <= self.size_px // 2,
                 f"fno_modes is {self.fno_modes}; use 1 to N/2 = {self.size_px // 2}")
        _require(self.amp_activation in AMP_ACTIVATIONS,
                 f"amp_activation is {self.amp_activation!r}; use one of {AMP_ACTIVATIONS}")
        _require(self.probe_scale > 0, f"probe_scale is {self.probe_scale}; it must be > 0")
        _require(self.offset_px >= 0 and self.max_position_jitter_px >= 0,
                 "offset_px and max_position_jitter_px must be >= 0")
        _require((self.padded_size_px - self.size_px) % 2 == 0,
                 f"the group canvas ({self.padded_size_px} px) and the patch ({self.size_px} px) "
                 "differ by an odd number of pixels; choose an even offset_px + "
                 "max_position_jitter_px")
        _require(self.merge_eps > 0, f"merge_eps is {self.merge_eps}; it must be > 0")
        _require(self.probe_modes >= 1,
                 f"probe_modes is {self.probe_modes}; use 1 or more probe modes")
        _require(0 < self.probe_mode_power * self.probe_modes < 1,
                 f"probe_mode_power is {self.probe_mode_power}; with {self.probe_modes} modes "
                 f"use a share in (0, 1/{self.probe_modes})")
        _require(self.projection_steps >= 0,
                 f"projection_steps is {self.projection_steps}; use 0 (the network's output as "
                 "it is) or more error-reduction steps at inference")
        _require(self.projection_blur_px is None or self.projection_blur_px >= 0,
                 f"projection_blur_px is {self.projection_blur_px}; use 0 (no blur) or a "
                 "standard deviation in pixels")
        _require(self.projection_sync_rounds is None or self.projection_sync_rounds >= 0,
                 f"projection_sync_rounds is {self.projection_sync_rounds}; use 0 (stitch the "
                 "groups' objects as they are) or more rounds of phase synchronisation")
        _require(self.projection_passes >= 0,
                 f"projection_passes is {self.projection_passes}; use 0 (the stitched object "
                 "as it is) or more passes of error reduction over the scan")

    @property
    def blur_px(self) -> float:
        """The projection blur in effect: ``projection_blur_px``, or when unset the gridsize's
        default (4 at gridsize 2 and more, 0 at gridsize 1)."""
        if self.projection_blur_px is not None:
            return self.projection_blur_px
        return PROJECTION_BLUR_PX if self.gridsize > 1 else 0.0

    @property
    def sync_rounds(self) -> int:
        """The phase synchronisation rounds in effect: ``projection_sync_rounds``, or when
        unset the gridsize's default (32 at gridsize 2 and more, 0 at gridsize 1)."""
        if self.projection_sync_rounds is not None:
            return self.projection_sync_rounds
        return PROJECTION_SYNC_ROUNDS if self.gridsize > 1 else 0

    @property
    def channels(self) -> int:
        """Patterns per group, ``C = gridsize**2``."""
        return self.gridsize**2

    @property
    def padded_size_px(self) -> int:
        """Side of the group canvas on which a group's patches are merged."""
        return self.size_px + (self.gridsize - 1) * self.offset_px + self.max_position_jitter_px


@dataclass(frozen=True)
class DataConfig:
    """How a scan is read, grouped and normalised.

    Attributes:
        values: the stored diffraction holds ``"amplitude"`` (sqrt of counts) or ``"counts"``.
        zero_frequency: where the stored patterns have zero frequency, ``"center"`` or
            ``"corner"`` (then ``fftshift`` is applied).
        positions: the stored coordinates mark each window's ``"center"`` or ``"corner"``.
        neighbors: candidate neighbours per scan point when grouping (gridsize > 1); an
            archive's value is also what reconstruction groups with (``pinn reconstruct
            --neighbors`` overrides it).
        nphotons: mean total counts per pattern; ``None`` measures it from counts, or uses
            the reference's 1e9 for amplitude data.
        grouping_seed: seed of the grouping draw; an archive's value is also reconstruction's
            (``pinn reconstruct --grouping-seed`` overrides it).
    """

    values: str = "amplitude"
    zero_frequency: str = "center"
    positions: str = "center"
    neighbors: int = 4
    nphotons: float | None = None
    grouping_seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self, "data")
        _require(self.values in ("amplitude", "counts"),
                 f"values is {self.values!r}; use 'amplitude' or 'counts'")
        _require(self.zero_frequency in ("center", "corner"),
                 f"zero_frequency is {self.zero_frequency!r}; use 'center' or 'corner'")
        _require(self.positions in ("center", "corner"),
                 f"positions is {self.positions!r}; use 'center' or 'corner'")
        _require(isinstance(self.neighbors, int) and self.neighbors >= 1,
                 f"neighbors is {self.neighbors!r}; use a positive int")
        _require(self.nphotons is None or self.nphotons > 0,
                 f"nphotons is {self.nphotons!r}; use a positive number or leave it unset")
        _check_seed("data.grouping_seed", self.grouping_seed)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimiser, schedule and precision of training (reference defaults where it has one).

    Attributes:
        epochs: passes over the training groups (``None``: as many as ``max_time_s`` allows).
        max_time_s: training time budget in seconds (``None``: none). Training stops cleanly
            at the budget or after ``epochs``, whichever comes first, and saves as at a normal
            end; a budget makes a run irreproducible bit for bit (it depends on the machine).
        batch_size: groups per optimiser step (per process under DDP: the global batch is
            ``batch_size * world_size``).
        learning_rate: Adam's initial learning rate. 2e-3 (pinn's default) suits the
            default CNN width (``n_filters_scale`` 1); the reference's is 1e-3 with its width 2
            (:func:`reference_config`; the wider network stays flat at 3e-3, docs/DESIGN.md
            §10).
        adam_beta2: the decay of Adam's second-moment average (the reference's, Keras's
            0.999; its first-moment decay stays 0.9).
        nll_weight: weight of the Poisson negative log-likelihood in the loss.
        mae_weight: weight of the mean absolute error of the amplitudes in the loss.
        schedule: ``"plateau"`` (reduce-on-plateau on the validation loss, the training loss
            without a validation split; the reference's) or ``"cosine"`` (a decay from
            ``learning_rate`` to ``min_learning_rate`` planned over the run: the rate of each
            epoch follows the fraction of ``epochs`` done, or of ``max_time_s`` spent, whichever
            is further).
        plateau_factor: reduce-on-plateau multiplies the learning rate by this when the
            validation loss (the training loss without a validation split) stops improving.
        plateau_patience: epochs without improvement before reduce-on-plateau acts.
        min_learning_rate: the learning rate is never reduced below this (the end point of
            the cosine schedule).
        keep_best: keep the weights of the epoch with the lowest monitored loss (validation,
            else training) and end with them; after an epoch whose loss jumped above the
            start's (all progress lost: the untrained model's validation loss, or the first
            epoch's training loss without a validation split) training goes back to them
            (with their optimiser state) and the plateau schedule lowers the rate at once.
        early_stopping_patience: with the plateau schedule, stop after this many epochs
            without improvement of the training loss (``0`` disables it). A cosine schedule is
            a plan and runs to its end (``epochs`` or ``max_time_s``): stopping it while the
            rate is still high would cut off the decay that brings most of its gain.
        validation_fraction: the last fraction of the groups held out for validation.
        grad_clip_norm: clip the global gradient norm (``None``: no clipping).
        grad_accumulation: micro-batches accumulated per optimiser step.
        precision: ``"off"``, ``"bf16"`` (CPU and CUDA) or ``"fp16"`` (CUDA, with a grad scaler).
        compile: run the model through ``torch.compile``.
        seed: seeds initial weights, data order and every other draw.
        deterministic: ask PyTorch for deterministic algorithms.
        max_nonfinite_steps: abort after this many non-finite steps in a row.
        log_images: write the reconstructed amplitude and phase to TensorBoard each epoch.
    """

    epochs: int | None = 50
    max_time_s: float | None = None
    batch_size: int = 16
    learning_rate: float = 2e-3
    adam_beta2: float = 0.999
    nll_weight: float = 1.0
    mae_weight: float = 0.0
    schedule: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_learning_rate: float = 1e-4
    keep_best: bool = True
    early_stopping_patience: int = 3
    validation_fraction: float = 0.05
    grad_clip_norm: float | None = None
    grad_accumulation: int = 1
    precision: str = "off"
    compile: bool = False
    seed: int = 0
    deterministic: bool = True
    max_nonfinite_steps: int = 10
    log_images: bool = True

    def __post_init__(self) -> None:
        _check_types(self, "training")
        _require(self.epochs is None or self.epochs >= 1,
                 f"epochs is {self.epochs!r}; use a positive int")
        _require(self.max_time_s is None or self.max_time_s > 0,
                 f"max_time_s is {self.max_time_s!r}; use a positive number of seconds")
        _require(self.epochs is not None or self.max_time_s is not None,
                 "epochs is unset and there is no max_time_s; set one of them")
        _require(isinstance(self.batch_size, int) and self.batch_size >= 1,
                 f"batch_size is {self.batch_size!r}; use a positive int")
        _require(self.learning_rate > 0, f"learning_rate is {self.learning_rate}; it must be > 0")
        _require(0 < self.adam_beta2 < 1,
                 f"adam_beta2 is {self.adam_beta2}; use a value in (0, 1)")
        _require(self.nll_weight >= 0 and self.mae_weight >= 0
                 and self.nll_weight + self.mae_weight > 0,
                 "nll_weight and mae_weight must be >= 0 and not both 0")
        _require(self.schedule in SCHEDULES,
                 f"schedule is {self.schedule!r}; use one of {SCHEDULES}")
        _require(0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)")
        _require(self.plateau_patience >= 0 and self.early_stopping_patience >= 0,
                 "patience values must be >= 0")
        _require(0 < self.min_learning_rate <= self.learning_rate,
                 "min_learning_rate must be in (0, learning_rate]")
        _require(0 <= self.validation_fraction < 1,
                 f"validation_fraction is {self.validation_fraction}; use a value in [0, 1)")
        _require(self.grad_clip_norm is None or self.grad_clip_norm > 0,
                 "grad_clip_norm must be > 0 or unset")
        _require(isinstance(self.grad_accumulation, int) and self.grad_accumulation >= 1,
                 "grad_accumulation must be a positive int")
        _require(self.precision in PRECISIONS,
                 f"precision is {self.precision!r}; use one of {PRECISIONS}")
        _require(isinstance(self.max_nonfinite_steps, int) and self.max_nonfinite_steps >= 1,
                 "max_nonfinite_steps must be a positive int")
        _check_seed("training.seed", self.seed)


@dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Config:
        _require(isinstance(raw, dict), "configuration must be a JSON object "
                 f"({{\"model\": {{...}}, ...}}), got {type(raw).__name__}")
        raw = upgrade(raw)
        sections = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig}
        unknown = set(raw) - set(sections) - {"schema_version"}
        _require(not unknown, f"unknown configuration sections {sorted(unknown)}; "
                 f"expected {sorted(sections)}")
        return cls(**{name: section_from_dict(kind, raw.get(name, {}), name)
                      for name, kind in sections.items()})

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ConfigError(f"configuration is not valid JSON ({exc})") from None
        _require(isinstance(raw, dict), "configuration JSON must be an object")
        return cls.from_dict(raw)


#: What :func:`reference_config` changes from pinn's defaults: the reference's CNN width and
#: learning rate, and neither projection steps nor passes at inference (every other default is
#: already the reference's recipe).
REFERENCE_RECIPE = {"model": {"n_filters_scale": 2, "projection_steps": 0,
                              "projection_passes": 0},
                    "training": {"learning_rate": 1e-3}}


def reference_config(config: Config | None = None) -> Config:
    """``config`` (default: the defaults) with the reference's CNN width and learning rate and
    the network's output as it is (:data:`REFERENCE_RECIPE`): the reference PtychoPINN's network
    and recipe, as ``pinn train --reference-recipe`` trains it."""
    config = config or Config()
    return Config(
        model=dataclasses.replace(config.model, **REFERENCE_RECIPE["model"]),
        data=config.data,
        training=dataclasses.replace(config.training, **REFERENCE_RECIPE["training"]))


#: The ``format`` of a model archive's ``config.json`` (see :mod:`pinn.archive`), whose
#: ``config`` key holds the configuration.
ARCHIVE_FORMAT = "pinn-model"


def section_from_dict(kind: type, raw: Any, name: str) -> Any:
    """Build one config dataclass from a dict, rejecting unknown keys by name."""
    _require(isinstance(raw, dict), f"configuration section {name!r} must be an object")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = set(raw) - known
    _require(not unknown, f"unknown keys {sorted(unknown)} in configuration section {name!r}; "
             f"known keys are {sorted(known)}")
    try:
        return kind(**raw)
    except TypeError as exc:
        raise ConfigError(f"configuration section {name!r}: {exc}") from None


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a configuration dict written by any earlier schema to the current schema.

    Raises ConfigError for a dict from a newer pinn than this one.
    """
    version = raw.get("schema_version", SCHEMA_VERSION)
    _require(isinstance(version, int) and not isinstance(version, bool),
             f"schema_version is {version!r}; expected an int")
    _require(version <= SCHEMA_VERSION,
             f"configuration schema version {version} is newer than this pinn supports "
             f"({SCHEMA_VERSION}); upgrade pinn")
    raw = dict(raw)
    if version < 2 and isinstance(raw.get("model"), dict):
        # schema 1 had only the reference CNN with amplitude / phase output
        raw["model"] = {"generator": "cnn", "output": "amp_phase", "width": 32,
                        "fno_modes": 16, **raw["model"]}
    if version < 3 and isinstance(raw.get("model"), dict):
        # schema 2 had a single coherent probe
        raw["model"] = {"probe_modes": 1, "probe_mode_power": 0.02, **raw["model"]}
    if version < 4:
        # up to schema 3 the CNN's width and the learning rate defaulted to the reference's;
        # a configuration of then that left them out meant those
        for section, key, value in (("model", "n_filters_scale", 2),
                                    ("training", "learning_rate", 1e-3)):
            if isinstance(raw.get(section, {}), dict):
                raw[section] = {key: value, **raw.get(section, {})}
    if version < 5 and isinstance(raw.get("model", {}), dict):
        # up to schema 4 the model's output was the network's, with no projection steps
        raw["model"] = {"projection_steps": 0, **raw.get("model", {})}
    if version < 6 and isinstance(raw.get("model", {}), dict):
        # up to schema 5 the projection steps started from the network's canvas as it was,
        # and their groups were stitched without phase synchronisation
        raw["model"] = {"projection_blur_px": 0.0, "projection_sync_rounds": 0,
                        **raw.get("model", {})}
    if version < 7 and isinstance(raw.get("model", {}), dict):
        # up to schema 6 the stitched object was the result, with no passes over the scan
        raw["model"] = {"projection_passes": 0, **raw.get("model", {})}
    raw["schema_version"] = SCHEMA_VERSION
    return raw
