"""pinn's Ptychodus settings: four groups with pinn's defaults, read back from a
settings.ini, optional values unset at 0, and invalid values refused by name."""

from __future__ import annotations

import dataclasses

import pytest
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.api.settings", reason=SKIP_REASON)

from ptychodus.api.settings import SettingsRegistry  # noqa: E402

from pinn.config import Config  # noqa: E402
from pinn.errors import ConfigError  # noqa: E402
from pinn.interop.ptychodus import PinnOptions, PinnSettings  # noqa: E402
from pinn.interop.ptychodus.settings import GROUPS  # noqa: E402
from pinn.refine import RefineConfig, network_refine_config  # noqa: E402


@pytest.fixture
def registry():
    return SettingsRegistry()


def test_four_groups_cover_every_configuration_field(registry):
    PinnSettings(registry)
    assert sorted(registry) == sorted(GROUPS.values())
    model = set(registry["PinnModel"].parameters())
    training = set(registry["PinnTraining"].parameters())
    assert model == {f.name for f in dataclasses.fields(Config().model)} - {"size_px"}
    assert {f.name for f in dataclasses.fields(Config().training)} <= training
    assert {"neighbors", "nphotons", "grouping_seed", "device", "bad_pixels"} <= training
    assert set(registry["PinnInference"].parameters()) == {"batch_size", "crop_px", "device"}
    assert set(registry["PinnRefinement"].parameters()) == \
        {f.name for f in dataclasses.fields(RefineConfig)}


def test_defaults_are_pinns_defaults(registry):
    assert PinnSettings(registry).options() == PinnOptions()
    assert PinnOptions().refine is None  # refinement is off unless epochs > 0
    refine = registry["PinnRefinement"].parameters()
    assert refine["epochs"].get_value() == 0
    defaults = network_refine_config()  # the refinement starts from the network's object
    for f in dataclasses.fields(RefineConfig):
        if f.name != "epochs":
            default = getattr(defaults, f.name)
            # an unset optional setting (None) is stored as 0, e.g. probe_modes: as many as
            # the start probe has
            assert refine[f.name].get_value() == (0 if default is None else default), f.name


def test_refinement_settings_from_a_file_and_back(tmp_path, registry):
    settings = PinnSettings(registry)
    ini = tmp_path / "settings.ini"
    ini.write_text("[PinnRefinement]\nepochs = 4\nprobe_modes = 3\nrefine_positions = true\n"
                   "probe_lr = 0.25\n")
    registry.open_settings(ini)
    expected = network_refine_config(epochs=4, probe_modes=3, refine_positions=True,
                                     probe_lr=0.25)
    assert settings.options().refine == expected
    registry.save_settings(tmp_path / "saved.ini")
    other = SettingsRegistry()
    reread = PinnSettings(other)
    other.open_settings(tmp_path / "saved.ini")
    assert reread.options().refine == expected
    registry["PinnRefinement"].parameters()["epochs"].set_value(0)
    assert settings.options().refine is None


def test_a_settings_file_changes_the_options(tmp_path, registry):
    settings = PinnSettings(registry)
    ini = tmp_path / "settings.ini"
    ini.write_text("[PinnModel]\ngridsize = 2\namp_activation = swish\nprobe_trainable = true\n"
                   "[PinnTraining]\nepochs = 7\nlearning_rate = 0.01\nnphotons = 1e6\n"
                   "grad_clip_norm = 0\ndevice = cpu\nbad_pixels = zero\n"
                   "[PinnInference]\nbatch_size = 5\ncrop_px = 12\n")
    registry.open_settings(ini)
    options = settings.options()
    assert options.config.model.gridsize == 2 and options.config.model.amp_activation == "swish"
    assert options.config.model.probe_trainable is True
    assert options.config.training.epochs == 7 and options.config.training.learning_rate == 0.01
    assert options.config.data.nphotons == 1e6 and options.config.training.grad_clip_norm is None
    assert (options.bad_pixels, options.infer_batch_size, options.crop_px) == ("zero", 5, 12)


def test_settings_round_trip_through_a_saved_file(tmp_path, registry):
    settings = PinnSettings(registry)
    registry["PinnTraining"].parameters()["epochs"].set_value(3)
    registry.save_settings(tmp_path / "saved.ini")
    other = SettingsRegistry()
    reread = PinnSettings(other)
    other.open_settings(tmp_path / "saved.ini")
    assert reread.options() == settings.options()
    assert reread.options().config.training.epochs == 3


@pytest.mark.parametrize("group, name, value, match", [
    ("PinnModel", "amp_activation", "tanh", "amp_activation"),
    ("PinnModel", "gridsize", 9, "gridsize"),
    ("PinnTraining", "validation_fraction", 1.5, "validation_fraction"),
    ("PinnTraining", "bad_pixels", "median", "bad_pixels"),
    ("PinnTraining", "device", "gpu7", "device"),
    ("PinnRefinement", "mode_power", 0.7, "mode_power"),
])
def test_invalid_values_are_refused_by_name(registry, group, name, value, match):
    settings = PinnSettings(registry)
    registry[group].parameters()[name].set_value(value)
    registry["PinnRefinement"].parameters()["epochs"].set_value(2)  # refinement settings count
    with pytest.raises(ConfigError, match=match):
        settings.options()
