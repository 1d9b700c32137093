"""Configuration: every field is type-checked (a JSON ``"false"`` is not False), floats are
finite, seeds fit the generators, and JSON round trips and rejections name the field."""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile

import numpy as np
import pytest

from pinn.config import (ARCHIVE_FORMAT, SCHEMA_VERSION, Config, DataConfig, ModelConfig,
                         TrainingConfig, reference_config)
from pinn.config_files import apply_settings, read_config_file
from pinn.errors import ConfigError


def test_json_round_trip_is_exact():
    config = Config(model=ModelConfig(gridsize=2, probe_trainable=True),
                    data=DataConfig(nphotons=1e7, neighbors=6),
                    training=TrainingConfig(epochs=3, grad_clip_norm=1.5, seed=2**63 - 1))
    assert Config.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("section, key, value, words", [
    ("model", "size_px", 64.0, "model.size_px is 64.0 (float); expected an int"),
    ("model", "gridsize", True, "model.gridsize is True (bool); expected an int"),
    ("model", "object_big", "false", "model.object_big is 'false' (str); expected true or false"),
    ("model", "probe_mask", 1, "model.probe_mask is 1 (int); expected true or false"),
    ("model", "probe_scale", "4", "model.probe_scale is '4' (str); expected a finite number"),
    ("model", "merge_eps", None, "model.merge_eps is None"),
    ("model", "amp_activation", ["sigmoid"], "model.amp_activation is ['sigmoid']"),
    ("model", "offset_px", 4.5, "model.offset_px is 4.5"),
    ("model", "generator", "resnet", "generator is 'resnet'; use one of ('cnn', 'unet', 'fno')"),
    ("model", "output", "polar", "output is 'polar'; use one of ('amp_phase', 'real_imag')"),
    ("model", "width", 6, "width is 6; use a positive multiple of 4"),
    ("model", "fno_modes", 33, "fno_modes is 33; use 1 to N/2 = 32"),
    ("training", "learning_rate", float("inf"), "training.learning_rate is inf"),
    ("training", "learning_rate", float("nan"), "training.learning_rate is nan"),
    ("training", "nll_weight", float("inf"), "training.nll_weight is inf"),
    ("training", "epochs", 2.0, "training.epochs is 2.0"),
    ("training", "compile", "no", "training.compile is 'no'"),
    ("training", "deterministic", None, "training.deterministic is None"),
    ("training", "grad_clip_norm", "1",
     "grad_clip_norm is '1' (str); expected a finite number or null (unset)"),
    ("training", "seed", "7", "training.seed is '7'"),
    ("training", "seed", -1, "training.seed is -1; use an int from 0 to 2**63 - 1"),
    ("training", "seed", 2**64, "training.seed is 18446744073709551616"),
    ("data", "nphotons", "1e9", "data.nphotons is '1e9'"),
    ("data", "nphotons", float("inf"), "data.nphotons is inf"),
    ("data", "grouping_seed", 2**70, "data.grouping_seed"),
    ("data", "neighbors", 4.0, "data.neighbors is 4.0"),
])
def test_wrong_types_and_values_name_the_field(section, key, value, words):
    raw = {section: {key: value}}
    with pytest.raises(ConfigError, match=re.escape(words)):
        Config.from_dict(raw)
    with pytest.raises(ConfigError, match=re.escape(words.split(" is ")[0])):
        Config.from_json(json.dumps(raw))


def test_numbers_are_normalised():
    config = ModelConfig(size_px=np.int64(128), probe_scale=4, merge_eps=np.float32(0.5))
    assert type(config.size_px) is int and config.size_px == 128
    assert type(config.probe_scale) is float and type(config.merge_eps) is float
    assert Config.from_json(Config(model=config).to_json()).model == config
    assert type(TrainingConfig(learning_rate=1).learning_rate) is float


def test_every_field_is_checked():
    """A field added later without a type the checker knows would escape validation."""
    for kind in (ModelConfig, DataConfig, TrainingConfig):
        for f in dataclasses.fields(kind):
            assert str(f.type).split("|")[0].strip() in ("int", "float", "bool", "str"), f.name


@pytest.mark.parametrize("text, words", [
    ("{", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ("[1, 2]", "must be an object"),
    ('{"model": 3}', "section 'model' must be an object"),
    ('{"optimizer": {}}', r"unknown configuration sections \['optimizer'\]"),
    ('{"model": {"sizepx": 64}}', r"unknown keys \['sizepx'\] in configuration section 'model'"),
    ('{"schema_version": 99}', "newer than this pinn supports"),
    ('{"schema_version": true}', "schema_version is True"),
    ('{"schema_version": "1"}', "schema_version is '1'"),
])
def test_bad_json(text, words):
    with pytest.raises(ConfigError, match=words):
        Config.from_json(text)


def test_from_dict_refuses_non_objects():
    with pytest.raises(ConfigError, match="must be a JSON object"):
        Config.from_dict(["model"])


# ------------------------------------------------------------------- reading and settings

RECIPE = Config(model=ModelConfig(gridsize=2, n_filters_scale=1),
                training=TrainingConfig(epochs=90, batch_size=8, plateau_patience=6,
                                        early_stopping_patience=0))


def manifest_bytes(config):
    return json.dumps({"format": ARCHIVE_FORMAT, "schema_version": 1,
                       "config": config.to_dict(), "weights_sha256": "0" * 64}).encode()


def test_every_way_a_configuration_is_stored_is_read(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(RECIPE.to_json())
    partial = tmp_path / "partial.json"
    partial.write_text('{"training": {"plateau_patience": 6}}')
    archive = tmp_path / "run" / "model"
    archive.mkdir(parents=True)
    (archive / "config.json").write_bytes(manifest_bytes(RECIPE))
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as zipped:
        zipped.writestr("config.json", manifest_bytes(RECIPE))
        zipped.writestr("model.safetensors", b"")
    for path in (plain, archive / "config.json", archive, tmp_path / "run",
                 tmp_path / "model.zip"):
        assert read_config_file(path) == RECIPE, path
    assert read_config_file(partial) == Config(training=TrainingConfig(plateau_patience=6))


@pytest.mark.parametrize("content, words", [
    (None, "cannot read the configuration"),
    (b"\xff\xfe", "not UTF-8"),
    (b"{", "not valid JSON"),
    (json.dumps({"format": ARCHIVE_FORMAT}).encode(), "must be a JSON object"),
    (json.dumps({"config": {}, "model": {}}).encode(), "unknown configuration sections"),
])
def test_unreadable_configurations_name_the_file(tmp_path, content, words):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=words) as info:
        read_config_file(path)
    assert "c.json" in str(info.value)


def test_a_zip_or_directory_without_a_configuration(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zipped:
        zipped.writestr("readme.txt", "x")
    with pytest.raises(ConfigError, match="zip file without config.json"):
        read_config_file(tmp_path / "other.zip")
    with pytest.raises(ConfigError, match="directory without a configuration"):
        read_config_file(tmp_path)


def test_settings_are_applied_in_order_and_parsed_as_json():
    config = apply_settings(RECIPE, ["training.plateau_patience=3", "training.precision=bf16",
                                     "training.grad_clip_norm=1.5", "model.probe_mask=true",
                                     "data.nphotons=null", "training.plateau_patience=4"])
    assert config == Config(
        model=dataclasses.replace(RECIPE.model, probe_mask=True), data=RECIPE.data,
        training=dataclasses.replace(RECIPE.training, plateau_patience=4, precision="bf16",
                                     grad_clip_norm=1.5))
    assert apply_settings(RECIPE, []) == RECIPE


@pytest.mark.parametrize("setting, words", [
    ("training.plateau_patience", "not SECTION.KEY=VALUE"),
    ("plateau_patience=3", "not SECTION.KEY=VALUE"),
    ("trainig.epochs=3", "unknown section 'trainig' (did you mean 'training'?)"),
    ("model.gridsise=2", "did you mean 'gridsize'"),
    ("model.gridsize=two", "model.gridsize is 'two'"),
    ("model.gridsize=2.0", "model.gridsize is 2.0"),
])
def test_bad_settings_say_what_is_wrong(setting, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        apply_settings(RECIPE, [setting])


def test_schema_1_model_sections_become_the_cnn():
    """Before schema 2 there was only the reference CNN with amplitude / phase output."""
    config = Config.from_dict({"schema_version": 1, "model": {"gridsize": 2}})
    assert (config.model.generator, config.model.output) == ("cnn", "amp_phase")
    assert config.model.gridsize == 2
    current = Config.from_dict({"model": {"generator": "fno", "output": "real_imag"}})
    assert (current.model.generator, current.model.output) == ("fno", "real_imag")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_older_schemas_keep_the_reference_width_and_rate(version):
    """Up to schema 3 the CNN's width and the learning rate defaulted to the reference's (2,
    1e-3): a configuration of then that left them out still means those."""
    config = Config.from_dict({"schema_version": version, "model": {"gridsize": 2}})
    assert (config.model.n_filters_scale, config.training.learning_rate) == (2, 1e-3)
    assert config.model.gridsize == 2
    given = Config.from_dict({"schema_version": version, "model": {"n_filters_scale": 3},
                              "training": {"learning_rate": 5e-4}})
    assert (given.model.n_filters_scale, given.training.learning_rate) == (3, 5e-4)
    current = Config.from_dict({"model": {"gridsize": 2}})
    assert (current.model.n_filters_scale, current.training.learning_rate) == (
        ModelConfig().n_filters_scale, TrainingConfig().learning_rate) == (1, 2e-3)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_older_schemas_have_no_projection_steps(version):
    """Up to schema 4 a model's output was the network's alone: a configuration of then means
    no projection steps at inference, unless it says otherwise."""
    assert Config.from_dict({"schema_version": version}).model.projection_steps == 0
    given = Config.from_dict({"schema_version": version, "model": {"projection_steps": 3}})
    assert given.model.projection_steps == 3
    assert Config.from_dict({}).model.projection_steps == ModelConfig().projection_steps > 0


@pytest.mark.parametrize("version", [1, 4, 5])
def test_older_schemas_start_the_projection_unblurred(version):
    """Up to schema 5 the projection steps started from the network's canvas as it was."""
    assert Config.from_dict({"schema_version": version}).model.projection_blur_px == 0.0
    given = Config.from_dict({"schema_version": version, "model": {"projection_blur_px": 2}})
    assert given.model.projection_blur_px == 2.0
    assert Config.from_dict({"schema_version": version}).model.projection_sync_rounds == 0
    upgraded = Config.from_dict({"schema_version": version, "model": {"gridsize": 2}}).model
    assert (upgraded.blur_px, upgraded.sync_rounds) == (0.0, 0)
    assert Config.from_dict({}).model.projection_blur_px is None  # the gridsize's default


@pytest.mark.parametrize("gridsize,blur,rounds", [(1, 0.0, 0), (2, 4.0, 32), (3, 4.0, 32)])
def test_the_projection_defaults_depend_on_the_gridsize(gridsize, blur, rounds):
    """Unset, the blur and the synchronisation are 4 px and 32 rounds for groups of several
    patterns and none for one; set, they are what is set, and unset survives a round trip
    (so that changing the gridsize later changes them too)."""
    config = ModelConfig(gridsize=gridsize)
    assert (config.blur_px, config.sync_rounds) == (blur, rounds)
    assert (config.projection_blur_px, config.projection_sync_rounds) == (None, None)
    given = ModelConfig(gridsize=gridsize, projection_blur_px=1.5, projection_sync_rounds=3)
    assert (given.blur_px, given.sync_rounds) == (1.5, 3)
    again = Config.from_dict(Config(model=config).to_dict()).model
    assert again == config
    assert dataclasses.replace(ModelConfig(), gridsize=gridsize).blur_px == blur


@pytest.mark.parametrize("steps", [-1, 1.5, "8"])
def test_bad_projection_steps_are_refused(steps):
    with pytest.raises(ConfigError, match="projection_steps"):
        ModelConfig(projection_steps=steps)


@pytest.mark.parametrize("rounds", [-1, 2.5, "8"])
def test_bad_sync_rounds_are_refused(rounds):
    with pytest.raises(ConfigError, match="projection_sync_rounds"):
        ModelConfig(projection_sync_rounds=rounds)


@pytest.mark.parametrize("blur", [-0.5, float("inf"), "4", True])
def test_bad_projection_blur_is_refused(blur):
    with pytest.raises(ConfigError, match="projection_blur_px"):
        ModelConfig(projection_blur_px=blur)


def test_reference_config_changes_only_the_width_the_rate_and_the_projection():
    base = Config(model=ModelConfig(gridsize=2, n_filters_scale=4, projection_steps=3),
                  training=TrainingConfig(batch_size=8, learning_rate=0.01))
    reference = reference_config(base)
    assert (reference.model.n_filters_scale, reference.training.learning_rate) == (2, 1e-3)
    assert reference.model == dataclasses.replace(base.model, n_filters_scale=2,
                                                  projection_steps=0, projection_passes=0)
    assert reference.training == dataclasses.replace(base.training, learning_rate=1e-3)
    assert reference.data == base.data
    assert reference_config() == reference_config(Config())
