"""Tests of pinn.archive: directory and zip round trips, strict and pickle-free loading, every
rejection with its message, atomic overwrites and describe()."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from _corrupt import patch_zip_headers
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from pinn.archive import describe, load_archive, read_manifest, save_archive
from pinn.config import Config, DataConfig, ModelConfig, TrainingConfig
from pinn.errors import ArchiveError, ConfigError
from pinn.model import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(**overrides):
    """A small model whose every tensor differs from a fresh build (so equality means the
    archive carried them)."""
    config = ModelConfig(n_filters_scale=1, **overrides)
    generator = torch.Generator().manual_seed(7)
    probe = torch.randn(64, 64, 2, generator=generator)
    model = build_model(config, probe=torch.view_as_complex(probe), intensity_scale=123.25)
    with torch.no_grad():
        for tensor in model.parameters():
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=generator))
    model.train()
    return model


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture
def saved(model, tmp_path):
    return save_archive(model, tmp_path / "model")


def full_config(model_config):
    return Config(model=model_config, data=DataConfig(neighbors=6, nphotons=1e7),
                  training=TrainingConfig(epochs=3, batch_size=5, learning_rate=2e-3))


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key].cpu(), sb[key].cpu()), key


# ---------------------------------------------------------------------------- round trips


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_an_archive_directory_gets_mkdirs_mode_and_a_replaced_one_keeps_its_own(model,
                                                                                tmp_path):
    old = os.umask(0o022)
    try:
        fresh = save_archive(model, tmp_path / "model")
        assert fresh.stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0o700
        assert (fresh / "config.json").stat().st_mode & 0o777 == 0o644
        fresh.chmod(0o750)
        save_archive(model, fresh)
        assert fresh.stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", ["model", "model.zip"])
@pytest.mark.parametrize("overrides", [
    {}, {"probe_trainable": True, "intensity_scale_trainable": True},
    {"gridsize": 2, "probe_mask": True, "amp_activation": "swish"}])
def test_round_trip(tmp_path, name, overrides):
    original = make_model(**overrides)
    config = full_config(original.config)
    path = save_archive(original, tmp_path / name, config=config,
                        provenance={"epochs_run": 3, "note": "test"})
    assert path == tmp_path / name
    assert path.is_dir() == (name == "model")
    archive = load_archive(path)
    assert_same_state(original, archive.model)
    assert archive.config == config
    assert archive.model.config == original.config
    assert float(archive.model.intensity_scale.detach()) == float(original.intensity_scale.detach())
    assert torch.equal(archive.model.probe, original.probe)
    assert archive.manifest["intensity_scale"] == float(original.intensity_scale.detach())
    assert archive.manifest["provenance"]["note"] == "test"
    # trainable tensors come back as parameters, fixed ones as buffers
    params = dict(archive.model.named_parameters())
    assert ("probe_real" in params) == original.config.probe_trainable
    assert ("log_scale" in params) == original.config.intensity_scale_trainable


def test_loaded_model_computes_the_same_output(model, saved):
    loaded = load_archive(saved).model
    model.eval()
    amplitude = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 10
    offsets = torch.zeros(2, 1, 2)
    with torch.no_grad():
        assert torch.equal(model(amplitude, offsets).object, loaded(amplitude, offsets).object)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_loaded_model_is_in_eval_mode_on_the_device(saved, device):
    loaded = load_archive(saved, device=device).model
    assert not loaded.training
    assert not any(module.training for module in loaded.modules())
    assert all(t.device == torch.device("cpu") for t in loaded.state_dict().values())


def test_unknown_device_is_a_pinn_error(saved):
    with pytest.raises(ConfigError, match="device"):
        load_archive(saved, device="nonsense")


def test_default_config_is_the_model_config(model, tmp_path):
    archive = load_archive(save_archive(model, tmp_path / "m"))
    assert archive.config == Config(model=model.config)


def test_manifest_records_provenance_and_checksum(model, tmp_path):
    path = save_archive(model, tmp_path / "m", provenance={"data_sha256": "ab" * 32})
    manifest = read_manifest(path)
    assert manifest["format"] == "pinn-model" and manifest["schema_version"] == 1
    weights = (path / "model.safetensors").read_bytes()
    assert manifest["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert manifest["provenance"]["data_sha256"] == "ab" * 32
    assert manifest["provenance"]["torch_version"] == torch.__version__
    assert "pinn_version" in manifest["provenance"]
    assert manifest["probe"]["shape"] == [64, 64]


def test_loading_never_unpickles(saved, tmp_path, monkeypatch, model):
    zipped = save_archive(model, tmp_path / "m.zip")

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for path in (saved, zipped):
        assert_same_state(model, load_archive(path).model)


def test_save_refuses_wrapped_models_and_mismatched_configs(model, tmp_path):
    with pytest.raises(TypeError, match="unwrapped"):
        save_archive(torch.nn.Sequential(model), tmp_path / "m")
    other = Config(model=ModelConfig(n_filters_scale=2))
    with pytest.raises(ConfigError, match="differs"):
        save_archive(model, tmp_path / "m", config=other)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------- rejections


def rewrite(path: Path, *, manifest=None, weights: bytes | None = None, fix_checksum=True):
    """Replace parts of a directory archive (and the checksum, unless told not to)."""
    if weights is not None:
        (path / "model.safetensors").write_bytes(weights)
        if fix_checksum:
            manifest = manifest or json.loads((path / "config.json").read_text())
            manifest["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    if manifest is not None:
        (path / "config.json").write_text(json.dumps(manifest))


def manifest_of(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())


def tensors_of(path: Path) -> dict:
    return load_safetensors((path / "model.safetensors").read_bytes())


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="no archive"):
        load_archive(tmp_path / "nothing")
    with pytest.raises(ArchiveError, match="no archive"):
        load_archive(tmp_path / "nothing.zip")


@pytest.mark.parametrize("member", ["config.json", "model.safetensors"])
def test_missing_member(saved, member):
    (saved / member).unlink()
    with pytest.raises(ArchiveError, match=f"lacks {member}"):
        load_archive(saved)


def test_non_json_config(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ArchiveError, match="not valid JSON"):
        load_archive(saved)
    (saved / "config.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ArchiveError, match="not valid JSON"):
        load_archive(saved)


@pytest.mark.parametrize("value", ["other-format", None])
def test_wrong_format_key(saved, value):
    manifest = manifest_of(saved)
    manifest["format"] = value
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="not a pinn model manifest"):
        load_archive(saved)


def test_manifest_that_is_not_an_object(saved):
    (saved / "config.json").write_text("[1, 2]")
    with pytest.raises(ArchiveError, match="not a pinn model manifest"):
        load_archive(saved)


@pytest.mark.parametrize("version", [2, 0, "1", None, True])
def test_unsupported_schema_version(saved, version):
    manifest = manifest_of(saved)
    manifest["schema_version"] = version
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="schema version"):
        load_archive(saved)


def test_newer_schema_version_says_upgrade(saved):
    manifest = manifest_of(saved)
    manifest["schema_version"] = 99
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="99.*upgrade pinn"):
        read_manifest(saved)


@pytest.mark.parametrize("key", ["config", "intensity_scale", "weights_sha256"])
def test_missing_manifest_key(saved, key):
    manifest = manifest_of(saved)
    del manifest[key]
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match=f"lacks the key '{key}'"):
        load_archive(saved)


def test_missing_model_section(saved):
    manifest = manifest_of(saved)
    del manifest["config"]["model"]
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="'model' section is missing"):
        load_archive(saved)


@pytest.mark.parametrize("change, match", [
    ({"size_px": 100}, "size_px is 100"),
    ({"no_such_option": 1}, "unknown keys"),
])
def test_invalid_model_config(saved, change, match):
    manifest = manifest_of(saved)
    manifest["config"]["model"].update(change)
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match=match):
        load_archive(saved)


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(ModelConfig)])
def test_every_model_key_is_required(saved, key):
    """A missing model option would silently take today's default (another activation,
    mask or probe scale that still fits the weights)."""
    manifest = manifest_of(saved)
    del manifest["config"]["model"][key]
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match=re.escape(f"the 'model' section lacks ['{key}']")):
        load_archive(saved)


def test_data_and_training_sections_may_be_partial(saved, model):
    """They record how the model was trained; nothing loaded from an archive depends on them."""
    manifest = manifest_of(saved)
    del manifest["config"]["training"]
    del manifest["config"]["data"]["neighbors"]
    rewrite(saved, manifest=manifest)
    assert_same_state(model, load_archive(saved).model)


def test_deeply_nested_config_json(saved):
    (saved / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArchiveError, match="not valid JSON"):
        load_archive(saved)


@pytest.mark.parametrize("member", ["config.json", "model.safetensors"])
def test_member_that_is_a_directory(saved, member):
    (saved / member).unlink()
    (saved / member).mkdir()
    with pytest.raises(ArchiveError, match=f"cannot read .*{member}"):
        load_archive(saved)


@pytest.mark.parametrize("scale", [0, -1.0, "big", None, True, float("inf"), float("nan")])
def test_invalid_intensity_scale(saved, scale):
    manifest = manifest_of(saved)
    manifest["intensity_scale"] = scale
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="intensity_scale"):
        load_archive(saved)


def test_flipped_byte_fails_the_checksum(saved):
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="checksum"):
        load_archive(saved)


def test_checksum_is_checked_in_zips(model, tmp_path):
    path = save_archive(model, tmp_path / "m.zip")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.safetensors")
    # stored, not compressed: the member's bytes follow its local header
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="checksum|CRC|not a readable zip"):
        load_archive(path)


@pytest.mark.parametrize("fix_checksum", [False, True])
def test_truncated_weights(saved, fix_checksum):
    data = (saved / "model.safetensors").read_bytes()
    rewrite(saved, weights=data[: len(data) - 1000], fix_checksum=fix_checksum)
    with pytest.raises(ArchiveError, match="not a valid safetensors" if fix_checksum
                       else "checksum"):
        load_archive(saved)


def test_weights_that_are_not_safetensors(saved):
    rewrite(saved, weights=b"\x00" * 64)
    with pytest.raises(ArchiveError, match="not a valid safetensors"):
        load_archive(saved)


def test_missing_tensor(saved):
    tensors = tensors_of(saved)
    del tensors["generator.encoder.0.conv1.bias"]
    rewrite(saved, weights=save_safetensors(tensors))
    with pytest.raises(ArchiveError, match=r"missing \['generator.encoder.0.conv1.bias'\]"):
        load_archive(saved)


def test_extra_tensor(saved):
    tensors = tensors_of(saved)
    tensors["smuggled"] = torch.zeros(3)
    rewrite(saved, weights=save_safetensors(tensors))
    with pytest.raises(ArchiveError, match=r"unexpected \['smuggled'\]"):
        load_archive(saved)


def test_misshapen_tensor(saved):
    tensors = tensors_of(saved)
    tensors["generator.encoder.0.conv1.bias"] = torch.zeros(5)
    rewrite(saved, weights=save_safetensors(tensors))
    with pytest.raises(ArchiveError, match=r"generator.encoder.0.conv1.bias has shape \(5,\)"):
        load_archive(saved)


def test_wrong_dtype_tensor(saved):
    tensors = tensors_of(saved)
    name = "generator.encoder.0.conv1.bias"
    tensors[name] = tensors[name].double()
    rewrite(saved, weights=save_safetensors(tensors))
    with pytest.raises(ArchiveError, match="float64"):
        load_archive(saved)


def test_weights_of_another_configuration(saved):
    manifest = manifest_of(saved)
    manifest["config"]["model"]["gridsize"] = 2
    rewrite(saved, manifest=manifest)
    with pytest.raises(ArchiveError, match="has shape"):
        load_archive(saved)


def zip_with(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def members_of(saved: Path) -> dict[str, bytes]:
    return {name: (saved / name).read_bytes() for name in ("config.json", "model.safetensors")}


def test_truncated_zip(model, tmp_path):
    path = save_archive(model, tmp_path / "m.zip")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="not a readable zip"):
        load_archive(path)


def test_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "m.zip").write_text("hello")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        load_archive(tmp_path / "m.zip")


@pytest.mark.parametrize("extra", ["notes.txt", "../evil", "/abs/evil", "sub/config.json"])
def test_zip_with_extra_or_escaping_entry(saved, tmp_path, extra):
    members = {**members_of(saved), extra: b"x"}
    path = zip_with(tmp_path / "bad.zip", members)
    with pytest.raises(ArchiveError, match="expected exactly"):
        load_archive(path)


def test_zip_with_traversal_instead_of_a_member(saved, tmp_path):
    members = members_of(saved)
    members["../model.safetensors"] = members.pop("model.safetensors")
    with pytest.raises(ArchiveError, match="expected exactly"):
        load_archive(zip_with(tmp_path / "bad.zip", members))


def test_zip_member_claiming_too_many_bytes(model, tmp_path, monkeypatch):
    import pinn.archive

    path = save_archive(model, tmp_path / "m.zip")
    monkeypatch.setattr(pinn.archive, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(ArchiveError, match="claims [0-9]+ bytes, more than allowed"):
        load_archive(path)


@pytest.mark.parametrize("patch", [dict(method=99), dict(flags=0x1), dict(flags=0x20)],
                         ids=["unknown compression", "encrypted", "patched data"])
@pytest.mark.parametrize("member", ["config.json", "model.safetensors"])
def test_zip_features_that_cannot_be_read(model, tmp_path, patch, member):
    path = save_archive(model, tmp_path / "m.zip")
    patch_zip_headers(path, member, **patch)
    with pytest.raises(ArchiveError, match="not a readable zip"):
        load_archive(path)


def test_zip_missing_a_member(saved, tmp_path):
    members = members_of(saved)
    del members["config.json"]
    with pytest.raises(ArchiveError, match="expected exactly"):
        load_archive(zip_with(tmp_path / "bad.zip", members))


def test_zip_written_by_another_tool_loads(saved, tmp_path, model):
    members = dict(reversed(list(members_of(saved).items())))  # other order, deflated
    path = zip_with(tmp_path / "deflated.zip", members, zipfile.ZIP_DEFLATED)
    assert_same_state(model, load_archive(path).model)


def test_zip_with_corrupt_deflated_member(saved, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members_of(saved).items():
            archive.writestr(name, data)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("model.safetensors")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 10: start + 30] = b"\xff" * 20  # garbage inside the deflate stream
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        load_archive(tmp_path / "bad.zip")


# --------------------------------------------------------------------------- atomic writes


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_overwrite_replaces_the_archive(tmp_path, name, model):
    path = save_archive(model, tmp_path / name)
    other = make_model(probe_trainable=True)
    save_archive(other, path)
    assert_same_state(other, load_archive(path).model)
    assert entries(tmp_path) == [name]


@pytest.mark.parametrize("name", ["model", "model.zip"])
@pytest.mark.parametrize("failing_call", [1, 2, 3, 4])
def test_failed_overwrite_keeps_the_previous_archive(tmp_path, monkeypatch, model, name,
                                                    failing_call):
    path = save_archive(model, tmp_path / name)
    before = {p.name: p.read_bytes() for p in (path.iterdir() if path.is_dir() else [path])}
    real_replace = os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    other = make_model(probe_trainable=True)
    if name.endswith(".zip") and failing_call > 1:
        save_archive(other, path)  # a zip is written with a single replace
        monkeypatch.undo()
        assert_same_state(other, load_archive(path).model)
        return
    with pytest.raises(OSError, match="simulated"):
        save_archive(other, path)
    monkeypatch.undo()
    assert entries(tmp_path) == [name]  # no temporary files or directories left
    after = {p.name: p.read_bytes() for p in (path.iterdir() if path.is_dir() else [path])}
    assert after == before
    assert_same_state(model, load_archive(path).model)


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_write_failure_midway_keeps_the_previous_archive(tmp_path, monkeypatch, model, name):
    path = save_archive(model, tmp_path / name)

    def full_disk(fd):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="simulated"):
        save_archive(make_model(gridsize=2), path)
    monkeypatch.undo()
    assert entries(tmp_path) == [name]
    assert_same_state(model, load_archive(path).model)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch, model):
    def full_disk(fd):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(os, "fsync", full_disk)
    for name in ("model", "model.zip"):
        with pytest.raises(OSError):
            save_archive(model, tmp_path / name)
    monkeypatch.undo()
    assert entries(tmp_path) == []


def test_refuses_to_replace_a_directory_that_is_not_an_archive(tmp_path, model):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(ArchiveError, match="not a pinn archive"):
        save_archive(model, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_refuses_to_write_a_directory_over_a_file(tmp_path, model):
    (tmp_path / "model").write_text("a file")
    with pytest.raises(ArchiveError, match="not a directory"):
        save_archive(model, tmp_path / "model")
    assert (tmp_path / "model").read_text() == "a file"


# -------------------------------------------------------------------------------- describe


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_describe(tmp_path, name):
    original = make_model(gridsize=2)
    config = Config(model=original.config, data=DataConfig(neighbors=6, grouping_seed=5))
    path = save_archive(original, tmp_path / name, config=config, provenance={"epochs_run": 7})
    text = describe(path)
    params = sum(p.numel() for p in original.parameters())
    manifest = read_manifest(path)
    assert re.search(r"^patch size N +64$", text, re.M)
    assert re.search(r"^gridsize +2 \(4 patterns per group\)$", text, re.M)
    assert re.search(r"^grouping +6 neighbours, seed 5 ", text, re.M)
    assert f"{params:,}" in text
    assert manifest["weights_sha256"] in text
    assert re.search(r"^epochs_run +7", text, re.M)
    assert "123.25" in text


def test_describe_without_optional_manifest_parts(saved):
    manifest = manifest_of(saved)
    del manifest["probe"]
    del manifest["provenance"]
    rewrite(saved, manifest=manifest)
    text = describe(saved)
    assert "[64, 64]" in text


def test_describe_rejects_a_corrupt_archive(saved):
    shutil.copy(saved / "config.json", saved / "model.safetensors")
    with pytest.raises(ArchiveError, match="checksum"):
        describe(saved)


def test_errors_quoting_the_weights_header_stay_on_one_line(saved):
    data = (saved / "model.safetensors").read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = "F3\n2"
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rewrite(saved, weights=len(text).to_bytes(8, "little") + text + data[8 + length:])
    with pytest.raises(ArchiveError, match="not a valid safetensors") as raised:
        load_archive(saved)
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------- probe modes


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_probe_modes_and_their_power_fractions_round_trip(tmp_path, name):
    original = make_model(probe_modes=3, probe_trainable=True)
    path = save_archive(original, tmp_path / name)
    loaded = load_archive(path)
    assert loaded.config.model.probe_modes == 3
    assert loaded.model.probe.shape == (3, 64, 64)
    assert_same_state(original, loaded.model)  # all modes, bit for bit
    probe = read_manifest(path)["probe"]
    powers = original.probe.detach().abs().square().double().sum(dim=(-2, -1))
    assert probe["modes"] == 3 and probe["shape"] == [3, 64, 64]
    assert probe["power_fraction"] == pytest.approx((powers / powers.sum()).tolist(), rel=1e-6)
    text = describe(path)
    shares = " / ".join(f"{100 * f:.1f}" for f in probe["power_fraction"])
    assert re.search(rf"^probe +\[3, 64, 64\] complex64, 3 modes \(power {shares} %\), "
                     "trained$", text, re.M)


def test_single_probe_archives_keep_their_tensors_and_say_one_mode(saved, model):
    assert tensors_of(saved)["probe_real"].shape == (64, 64, 2)
    probe = manifest_of(saved)["probe"]
    assert probe["modes"] == 1 and probe["power_fraction"] == [1.0]
    assert re.search(r"^probe +\[64, 64\] complex64, 1 mode, fixed$", describe(saved), re.M)


def test_archives_from_before_probe_modes_load_unchanged(saved, model):
    """Schema 2 had no probe_modes / probe_mode_power and its manifest no mode facts."""
    manifest = manifest_of(saved)
    manifest["config"]["schema_version"] = 2
    for key in ("probe_modes", "probe_mode_power"):
        del manifest["config"]["model"][key]
    for key in ("modes", "power_fraction"):
        del manifest["probe"][key]
    rewrite(saved, manifest=manifest)
    loaded = load_archive(saved)
    assert loaded.config.model == model.config
    assert_same_state(model, loaded.model)
    assert re.search(r"^probe +\[64, 64\] complex64, 1 mode, fixed$", describe(saved), re.M)


def test_archives_from_before_projection_steps_reconstruct_with_the_network_alone(saved, model):
    """Schema 4 had no projection steps: such an archive means the network's object as it is,
    and pinn info says so."""
    assert model.config.projection_steps > 0
    manifest = manifest_of(saved)
    manifest["config"]["schema_version"] = 4
    del manifest["config"]["model"]["projection_steps"]
    del manifest["config"]["model"]["projection_blur_px"]  # schema 6's
    del manifest["config"]["model"]["projection_sync_rounds"]
    del manifest["config"]["model"]["projection_passes"]  # schema 7's
    rewrite(saved, manifest=manifest)
    loaded = load_archive(saved)
    assert loaded.config.model.projection_steps == 0
    assert loaded.config.model == dataclasses.replace(model.config, projection_steps=0,
                                                      projection_blur_px=0.0,
                                                      projection_sync_rounds=0,
                                                      projection_passes=0)
    assert_same_state(model, loaded.model)
    assert re.search(r"^projection steps +none", describe(saved), re.M)


def test_archives_from_before_the_projection_blur_start_unblurred_and_unsynchronised(saved, model):
    """Schema 5 started the projection steps from the network's canvas as it was and stitched
    the groups without phase synchronisation: such an archive keeps its steps without either,
    and pinn info says so."""
    assert (model.config.projection_blur_px, model.config.projection_sync_rounds) == (None, None)
    manifest = manifest_of(saved)
    manifest["config"]["schema_version"] = 5
    del manifest["config"]["model"]["projection_blur_px"]
    del manifest["config"]["model"]["projection_sync_rounds"]
    del manifest["config"]["model"]["projection_passes"]  # schema 7's
    rewrite(saved, manifest=manifest)
    loaded = load_archive(saved)
    assert loaded.config.model == dataclasses.replace(model.config, projection_blur_px=0.0,
                                                      projection_sync_rounds=0,
                                                      projection_passes=0)
    assert_same_state(model, loaded.model)
    assert re.search(r"^projection steps +16 per group at inference, from the network's object "
                     r"as it is; no phase synchronisation$", describe(saved), re.M)


def test_archives_from_before_the_scan_passes_stitch_without_them(saved, model):
    """Schema 6 ended with the stitched object: such an archive keeps its steps, blur and
    synchronisation and makes no passes over the scan; a current archive records its passes,
    and pinn info says which."""
    assert model.config.projection_passes == 4
    assert re.search(r"^projection steps +16 per group at inference, .*; then 4 passes over the "
                     r"whole scan$", describe(saved), re.M)
    manifest = manifest_of(saved)
    manifest["config"]["schema_version"] = 6
    del manifest["config"]["model"]["projection_passes"]
    rewrite(saved, manifest=manifest)
    loaded = load_archive(saved)
    assert loaded.config.model == dataclasses.replace(model.config, projection_passes=0)
    assert_same_state(model, loaded.model)
    assert re.search(r"^projection steps +16 per group at inference, [^;]*; [^;]*synchronisation$",
                     describe(saved), re.M)
