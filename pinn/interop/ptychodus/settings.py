"""pinn's settings in Ptychodus: four groups, read into one picklable :class:`PinnOptions`.

Ptychodus keeps settings as named, typed parameters in groups of its ``SettingsRegistry``
(saved to and read from ``settings.ini``). pinn registers

- ``PinnModel``: every :class:`pinn.config.ModelConfig` field except ``size_px`` (taken from the
  data's pattern size when training);
- ``PinnTraining``: every :class:`pinn.config.TrainingConfig` field, the grouping and dose
  fields of :class:`pinn.config.DataConfig` (``neighbors``, ``nphotons``, ``grouping_seed``),
  ``device`` and ``bad_pixels``;
- ``PinnInference``: ``batch_size``, ``crop_px``, ``device``;
- ``PinnRefinement``: every :class:`pinn.refine.RefineConfig` field, the refinement that
  follows a reconstruction (object, probe modes, optionally positions fitted to the counts),
  with the defaults of a start from the network (:func:`pinn.refine.network_refine_config`);
  ``epochs`` 0 (the default) turns it off.

Parameter names are the configuration field names, so a ``settings.ini`` reads like pinn's
``config.json``. An optional number (``nphotons``, ``grad_clip_norm``, ``crop_px``) is unset
when 0 (``probe_modes`` 0: as many modes as the start probe has). Values are validated when
read (:meth:`PinnSettings.options`), with pinn's messages.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from ptychodus.api.observer import Observable, Observer
from ptychodus.api.settings import SettingsRegistry

from pinn.config import Config, DataConfig, ModelConfig, TrainingConfig, section_from_dict
from pinn.engine.distributed import resolve_device
from pinn.errors import ConfigError
from pinn.interop.ptychodus.counts import BAD_PIXEL_FILLS
from pinn.refine import RefineConfig, network_refine_config

__all__ = ["GROUPS", "PinnOptions", "PinnSettings"]

#: Ptychodus settings group names, by role.
GROUPS = {"model": "PinnModel", "training": "PinnTraining", "inference": "PinnInference",
          "refine": "PinnRefinement"}
_DATA_FIELDS = ("neighbors", "nphotons", "grouping_seed")


@dataclass(frozen=True)
class PinnOptions:
    """Everything pinn needs from the settings, as plain picklable values.

    Attributes:
        config: the run configuration (``model.size_px`` is replaced by the data's N when
            training).
        train_device, infer_device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        infer_batch_size: groups per forward pass when reconstructing.
        crop_px: side of the stitched window of each group (None: N/2).
        bad_pixels: ``"neighbors"`` or ``"zero"``
            (:func:`pinn.interop.ptychodus.counts.counts_to_amplitude`).
        verbose: print training progress on stderr.
        refine: refine each reconstruction with these settings (None: no refinement).
    """

    config: Config = field(default_factory=Config)
    train_device: str = "cpu"
    infer_device: str = "cpu"
    infer_batch_size: int = 64
    crop_px: int | None = None
    bad_pixels: str = "neighbors"
    verbose: bool = True
    refine: RefineConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, Config):
            raise ConfigError(f"config must be a pinn Config, got {type(self.config).__name__}")
        for name in ("train_device", "infer_device"):
            resolve_device(getattr(self, name))
        if isinstance(self.infer_batch_size, bool) or not isinstance(self.infer_batch_size, int) \
                or self.infer_batch_size < 1:
            raise ConfigError(f"inference batch_size is {self.infer_batch_size!r}; use a "
                              "positive int")
        if self.crop_px is not None and (not isinstance(self.crop_px, int) or self.crop_px < 1):
            raise ConfigError(f"crop_px is {self.crop_px!r}; use a positive int, or 0 for N/2")
        if self.bad_pixels not in BAD_PIXEL_FILLS:
            raise ConfigError(f"bad_pixels is {self.bad_pixels!r}; use one of "
                              f"{BAD_PIXEL_FILLS}")
        if self.refine is not None and not isinstance(self.refine, RefineConfig):
            raise ConfigError(f"refine must be a pinn RefineConfig or None, got "
                              f"{type(self.refine).__name__}")


class PinnSettings(Observable, Observer):
    """The ``PinnModel``, ``PinnTraining``, ``PinnInference`` and ``PinnRefinement`` groups of
    a Ptychodus settings registry, with pinn's defaults.

    Raises:
        ValueError: (from Ptychodus) the groups already exist in ``registry``.
    """

    def __init__(self, registry: SettingsRegistry) -> None:
        super().__init__()
        self._groups = {role: registry.create_group(name) for role, name in GROUPS.items()}
        for group in self._groups.values():
            group.add_observer(self)
        defaults = Config()
        self.model = _add_fields(self._groups["model"], defaults.model, skip=("size_px",))
        self.training = _add_fields(self._groups["training"], defaults.training)
        self.data = _add_fields(self._groups["training"], defaults.data, only=_DATA_FIELDS)
        training = self._groups["training"]
        self.train_device = training.create_string_parameter("device", "cpu")
        self.bad_pixels = training.create_string_parameter("bad_pixels", "neighbors")
        inference = self._groups["inference"]
        self.infer_batch_size = inference.create_integer_parameter("batch_size", 64, minimum=1)
        self.crop_px = inference.create_integer_parameter("crop_px", 0, minimum=0)
        self.infer_device = inference.create_string_parameter("device", "cpu")
        refine = self._groups["refine"]
        self.refine_epochs = refine.create_integer_parameter("epochs", 0, minimum=0)
        self.refine = _add_fields(refine, network_refine_config(), skip=("epochs",))

    def groups(self) -> dict[str, typing.Any]:
        """The four Ptychodus ``ParameterGroup`` objects, by role (``"model"``,
        ``"training"``, ``"inference"``, ``"refine"``)."""
        return dict(self._groups)

    def options(self) -> PinnOptions:
        """The current values as validated :class:`PinnOptions`.

        Raises:
            ConfigError: a value pinn refuses (the message names the field).
        """
        raw = {"model": _values(self.model), "training": _values(self.training),
               "data": _values(self.data)}
        config = Config(**{name: section_from_dict(kind, raw[name], f"{GROUPS.get(name, name)}")
                           for name, kind in (("model", ModelConfig),
                                              ("training", TrainingConfig),
                                              ("data", DataConfig))})
        crop = self.crop_px.get_value()
        epochs = self.refine_epochs.get_value()
        refine = (section_from_dict(RefineConfig, {"epochs": epochs, **_values(self.refine)},
                                    GROUPS["refine"]) if epochs else None)
        return PinnOptions(config=config, train_device=self.train_device.get_value().strip(),
                           infer_device=self.infer_device.get_value().strip(),
                           infer_batch_size=self.infer_batch_size.get_value(),
                           crop_px=crop or None, bad_pixels=self.bad_pixels.get_value().strip(),
                           refine=refine)

    def _update(self, observable: Observable) -> None:
        if observable in self._groups.values():
            self.notify_observers()


def _add_fields(group, defaults, *, skip=(), only=None) -> dict[str, typing.Any]:
    """One Ptychodus parameter per dataclass field, typed after the field's annotation and
    holding its default; returns ``{field name: (parameter, optional)}``."""
    hints = typing.get_type_hints(type(defaults))
    parameters = {}
    for f in dataclasses.fields(defaults):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        kind, optional = _base_type(hints[f.name])
        value = getattr(defaults, f.name)
        if kind is bool:
            parameter = group.create_boolean_parameter(f.name, value)
        elif kind is int:
            parameter = group.create_integer_parameter(f.name, 0 if value is None else value)
        elif kind is float:
            parameter = group.create_real_parameter(f.name, 0.0 if value is None else value)
        elif kind is str:
            parameter = group.create_string_parameter(f.name, value)
        else:  # a new config field of another type needs a mapping here
            raise TypeError(f"no Ptychodus parameter type for {f.name}: {hints[f.name]}")
        parameters[f.name] = (parameter, optional)
    return parameters


def _base_type(hint: typing.Any) -> tuple[type, bool]:
    """``float | None`` -> ``(float, True)``; ``int`` -> ``(int, False)``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args:
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _values(parameters: dict[str, typing.Any]) -> dict[str, typing.Any]:
    values = {}
    for name, (parameter, optional) in parameters.items():
        value = parameter.get_value()
        values[name] = None if optional and value == 0 else value
    return values
