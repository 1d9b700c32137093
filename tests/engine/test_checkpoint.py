"""Tests of pinn.engine.checkpoint: one pickle-free safetensors file, written atomically,
restored exactly, and rejected with ArchiveError when damaged or mismatched."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from _engine_helpers import ImageSet, TinyNet, assert_bitwise_equal, make_model, mse_loss
from pinn import atomic
from pinn.engine import checkpoint as ckpt
from pinn.errors import ArchiveError


def trained(steps: int = 3, seed: int = 0) -> tuple[TinyNet, torch.optim.Adam]:
    model = make_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-7)
    data = ImageSet(8)
    for step in range(steps):
        optimizer.zero_grad()
        mse_loss(model, data.get_batch(torch.arange(step, step + 4)))[0].backward()
        optimizer.step()
    model.shift.fill_(0.25)
    return model, optimizer


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"{pid}/{key}": value for pid, entries in optimizer.state_dict()["state"].items()
            for key, value in entries.items()}


RNG_STATE = torch.Generator().manual_seed(5).get_state()
STATE = {"loop": {"epoch": 2, "step": 5, "sums": {"loss": 0.1 + 0.2}, "items": 12.0,
                  "history": [{"train_loss": 1 / 3}]},
         "plateau": {"lr": 1e-3, "best": math.inf, "wait": 0},
         "run_info": {"config": {"size_px": 64, "nested": [1, 2.5, None, "x"]}}}


@pytest.fixture
def saved(tmp_path) -> tuple[Path, TinyNet, torch.optim.Adam]:
    model, optimizer = trained()
    path = tmp_path / "last.safetensors"
    ckpt.save_checkpoint(path, model, optimizer, STATE, extra_tensors={"rng": RNG_STATE})
    return path, model, optimizer


def test_round_trip_restores_weights_buffers_optimizer_and_state_exactly(saved):
    path, model, optimizer = saved
    tensors, meta = ckpt.load_checkpoint(path)
    assert meta["state"] == STATE  # floats, inf and nesting survive JSON exactly
    fresh = make_model(seed=9)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5, eps=1e-7)
    extra = ckpt.restore(tensors, meta, fresh, fresh_optimizer)
    assert_bitwise_equal(fresh.state_dict(), model.state_dict())
    assert fresh.shift.item() == 0.25
    assert_bitwise_equal(optimizer_tensors(fresh_optimizer), optimizer_tensors(optimizer))
    assert fresh_optimizer.param_groups[0]["lr"] == 1e-2
    assert torch.equal(extra["rng"], RNG_STATE)

    # The next optimiser step is the same bit for bit.
    batch = ImageSet(8).get_batch(torch.arange(4))
    for m, opt in ((model, optimizer), (fresh, fresh_optimizer)):
        opt.zero_grad()
        mse_loss(m, batch)[0].backward()
        opt.step()
    assert_bitwise_equal(fresh.state_dict(), model.state_dict())


def test_file_is_plain_safetensors_without_pickle(saved):
    path, model, _ = saved
    with safe_open(str(path), framework="pt") as handle:
        names = set(handle.keys())
        meta = json.loads(handle.metadata()["pinn_checkpoint"])
    assert {f"model/{k}" for k in model.state_dict()} <= names
    assert any(n.startswith("optimizer/") for n in names) and "extra/rng" in names
    assert meta["format"] == ckpt.FORMAT and meta["format_version"] == ckpt.FORMAT_VERSION
    assert b"torch._utils" not in path.read_bytes() and b"\x80\x02" not in path.read_bytes()[:8]


def test_save_leaves_no_temporary_files_and_overwrites(saved, tmp_path):
    path, model, optimizer = saved
    ckpt.save_checkpoint(path, model, optimizer, {"loop": {"epoch": 3}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]
    assert ckpt.load_checkpoint(path)[1]["state"] == {"loop": {"epoch": 3}}


def test_failed_write_keeps_the_previous_checkpoint(saved, tmp_path, monkeypatch):
    path, model, optimizer = saved
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(path, model, optimizer, {"loop": {"epoch": 9}})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]


def test_state_that_is_not_json_is_refused_before_writing(saved, tmp_path):
    path, model, optimizer = saved
    before = path.read_bytes()
    with pytest.raises(TypeError):
        ckpt.save_checkpoint(path, model, optimizer, {"loop": {"when": object()}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]


@pytest.mark.parametrize("keep", [0, 1, 7, 8, 40, "header", "half", -1])
def test_truncated_checkpoint_is_rejected(saved, keep):
    path, _, _ = saved
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    cut = {"header": header_end, "half": len(data) // 2}.get(keep, keep)
    path.write_bytes(data[:cut])
    with pytest.raises(ArchiveError, match="corrupt"):
        ckpt.load_checkpoint(path)


def test_flipped_byte_in_the_tensor_data_is_rejected(saved):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    data[header_end + (len(data) - header_end) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("damage", ["garbage", "header_json", "metadata_json", "metadata_list",
                                    "header_length"])
def test_damaged_header_is_rejected(saved, damage):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    header = data[8:8 + header_len]
    if damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "header_json":
        data[8] = ord("[")
    elif damage == "header_length":
        data[:8] = (header_len + 3).to_bytes(8, "little")
    else:
        parsed = json.loads(bytes(header))
        parsed["__metadata__"]["pinn_checkpoint"] = ("{not json" if damage == "metadata_json"
                                                     else "[1, 2]")
        new_header = json.dumps(parsed).encode()
        new_header += b" " * (-len(new_header) % 8)
        data = (bytearray(len(new_header).to_bytes(8, "little")) + new_header
                + data[8 + header_len:])
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        ckpt.load_checkpoint(path)


def test_missing_and_foreign_files_are_rejected(tmp_path):
    with pytest.raises(ArchiveError, match="cannot read"):
        ckpt.load_checkpoint(tmp_path / "absent.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))  # valid safetensors, not a checkpoint
    with pytest.raises(ArchiveError):
        ckpt.load_checkpoint(plain)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other),
              metadata={"pinn_checkpoint": json.dumps({"format": "something-else"})})
    with pytest.raises(ArchiveError, match="format"):
        ckpt.load_checkpoint(other)


def test_newer_format_version_is_rejected(saved, monkeypatch):
    path, model, optimizer = saved
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", ckpt.FORMAT_VERSION + 1)
    ckpt.save_checkpoint(path, model, optimizer, {})
    monkeypatch.undo()
    with pytest.raises(ArchiveError, match="version"):
        ckpt.load_checkpoint(path)


def test_checkpoint_of_another_model_is_rejected(saved):
    path, _, _ = saved
    tensors, meta = ckpt.load_checkpoint(path)
    wider = TinyNet(width=6)
    with pytest.raises(ArchiveError, match="does not match") as raised:
        ckpt.restore(tensors, meta, wider, torch.optim.Adam(wider.parameters()))
    assert "\n" not in str(raised.value)  # torch's message spans lines; the CLI prints one


def test_checkpoint_with_missing_or_extra_weights_is_rejected(saved):
    path, model, _ = saved
    tensors, meta = ckpt.load_checkpoint(path)
    target = make_model()
    for broken in ({k: v for k, v in tensors.items() if k != "model/conv2.bias"},
                   {**tensors, "model/extra.weight": torch.zeros(1)}):
        with pytest.raises(ArchiveError, match="does not match"):
            ckpt.restore(broken, meta, target, torch.optim.Adam(target.parameters()))


def test_checkpoint_for_another_optimizer_layout_is_rejected(saved):
    path, _, _ = saved
    tensors, meta = ckpt.load_checkpoint(path)
    target = make_model()
    split = torch.optim.Adam([{"params": [target.conv1.weight, target.conv1.bias]},
                              {"params": [target.conv2.weight, target.conv2.bias]}])
    with pytest.raises(ArchiveError, match="does not match"):
        ckpt.restore(tensors, meta, target, split)


def test_fresh_optimizer_without_state_round_trips(tmp_path):
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    path = tmp_path / "c.safetensors"
    ckpt.save_checkpoint(path, model, optimizer, {"loop": {}})
    tensors, meta = ckpt.load_checkpoint(path)
    target = make_model(seed=4)
    target_optimizer = torch.optim.Adam(target.parameters(), lr=1.0)
    ckpt.restore(tensors, meta, target, target_optimizer)
    assert_bitwise_equal(target.state_dict(), model.state_dict())
    assert target_optimizer.state_dict() == optimizer.state_dict()


# ------------------------------------------------------------------ the header is covered too


def edit_header(path: Path, edit) -> None:
    """Rewrite a safetensors file's JSON header with ``edit(header)``; the body is kept."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])


def edit_meta(path: Path, edit) -> None:
    def apply(header):
        meta = json.loads(header["__metadata__"]["pinn_checkpoint"])
        edit(meta)
        header["__metadata__"]["pinn_checkpoint"] = json.dumps(meta)
    edit_header(path, apply)


@pytest.mark.parametrize("edit", [
    lambda m: m["state"]["plateau"].update(lr=9e-3),
    lambda m: m["state"]["loop"].update(epoch=3),
    lambda m: m["optimizer"]["param_groups"][0].update(lr=0.5),
    lambda m: m.pop("content_sha256"),
], ids=["learning rate", "epoch", "optimizer group", "no checksum"])
def test_changed_metadata_is_rejected(saved, edit):
    path, _, _ = saved
    edit_meta(path, edit)
    with pytest.raises(ArchiveError, match="corrupt"):
        ckpt.load_checkpoint(path)


def test_changed_tensor_table_is_rejected(saved):
    """A dtype letter or swapped offsets leave the body intact but change what it means."""
    path, _, _ = saved
    original = path.read_bytes()

    def retype(header):
        header["model/conv1.weight"]["dtype"] = "I32"  # same width as F32

    def swap(header):
        a, b = header["optimizer/1/exp_avg"], header["optimizer/1/exp_avg_sq"]
        assert a["shape"] == b["shape"] and a["dtype"] == b["dtype"]
        a["data_offsets"], b["data_offsets"] = b["data_offsets"], a["data_offsets"]

    for edit in (retype, swap):
        path.write_bytes(original)
        edit_header(path, edit)
        with pytest.raises(ArchiveError, match="corrupt"):
            ckpt.load_checkpoint(path)


@pytest.mark.parametrize("version", [0, 1, 2, 4, "3", None, 3.5])
def test_other_format_versions_are_rejected(saved, version):
    """Only this version is read: 1 and 2 were never released, 4 is a later pinn's."""
    path, _, _ = saved
    tensors, meta = ckpt.load_checkpoint(path)
    meta["format_version"] = version
    meta["content_sha256"] = ckpt._content_digest(tensors, meta)
    edit_meta(path, lambda m: m.update(meta))
    with pytest.raises(ArchiveError, match="version"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("edit", [
    lambda m: m.update(optimizer=None),
    lambda m: m["optimizer"].update(scalars=[1, 2]),
    lambda m: m["optimizer"].update(param_groups="adam"),
    lambda m: m["optimizer"].update(param_groups=[]),
    lambda m: m["optimizer"]["scalars"].update({"x": {}}),
])
def test_restore_refuses_metadata_of_another_structure(saved, edit):
    """E.g. a hand-edited checkpoint whose checksum was recomputed by a tool."""
    path, _, _ = saved
    tensors, meta = ckpt.load_checkpoint(path)
    edit(meta)
    target = make_model()
    with pytest.raises(ArchiveError, match="does not match"):
        ckpt.restore(tensors, meta, target, torch.optim.Adam(target.parameters()))


def test_errors_quoting_the_header_stay_on_one_line(saved):
    path, _, _ = saved
    edit_header(path, lambda header: header["model/conv1.bias"].update(dtype="F3\n2"))
    with pytest.raises(ArchiveError, match="corrupt") as raised:
        ckpt.load_checkpoint(path)
    assert "\n" not in str(raised.value)
