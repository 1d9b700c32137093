"""Tests of pinn.engine.precision: telling a CPU that runs bf16 natively from one that
emulates it (~10x slower), and training in float32, saying so, on the latter unless forced."""

from __future__ import annotations

import pytest
import torch

from _engine_helpers import ImageSet, config, make_model, mse_loss
from pinn.engine import precision
from pinn.engine.train import train
from pinn.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.parametrize("capability, flags, machine, expected", [
    ("AVX512", {"avx2", "avx512f", "avx512_bf16"}, "x86_64", True),
    ("AVX512", {"avx2", "avx512f", "amx_bf16", "amx_tile"}, "x86_64", True),
    ("AVX512", {"avx2", "avx512f"}, "x86_64", False),  # AVX-512 without bf16
    ("AVX2", {"avx2"}, "x86_64", False),  # an AVX2 EPYC
    ("AVX2", {"avx2", "avx512f", "avx512_bf16"}, "x86_64", False),  # ATEN_CPU_CAPABILITY=avx2
    ("DEFAULT", set(), "x86_64", False),
    ("DEFAULT", {"bf16"}, "aarch64", None),  # another architecture: not known
    ("SVE256", {"sve", "bf16"}, "arm64", None),
])
def test_native_bf16_is_told_from_capability_and_flags(capability, flags, machine, expected,
                                                       monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert precision.cpu_bf16_native(capability, flags, machine) is expected


def test_onednn_capped_below_avx512_emulates_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.cpu_bf16_native("AVX512", {"avx512_bf16"}, "x86_64") is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert precision.cpu_bf16_native("AVX512", {"avx512_bf16"}, "x86_64") is True


def test_unreadable_flags_are_unknown(monkeypatch, tmp_path):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: None)
    assert precision.cpu_bf16_native("AVX512", None, "x86_64") is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: AMD EPYC\n"
                                      "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\n"
                                      "processor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(tmp_path / "cpuinfo") == {"fpu", "sse2", "avx2", "avx512f",
                                                         "avx512_bf16"}
    assert precision.cpu_flags(tmp_path / "absent") is None


@pytest.mark.parametrize("native, force, expected, warned", [
    (False, False, None, True),
    (False, True, torch.bfloat16, False),
    (True, False, torch.bfloat16, False),
    (None, False, torch.bfloat16, False),  # not known: as asked
])
def test_bf16_falls_back_to_float32_where_emulated(native, force, expected, warned,
                                                   monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: native)
    said = []
    assert precision.autocast_dtype("bf16", CPU, force=force, say=said.append) is expected
    assert len(said) == (1 if warned else 0)
    if warned:
        assert "no native bf16" in said[0] and "float32" in said[0] and "\n" not in said[0]


def test_other_precisions(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    assert precision.autocast_dtype("off", CPU) is None
    with pytest.raises(ConfigError, match="fp16"):
        precision.autocast_dtype("fp16", CPU)
    # bf16 on a GPU is not this module's concern
    assert precision.autocast_dtype("bf16", torch.device("cuda")) is torch.bfloat16


@pytest.mark.parametrize("force", [False, True])
def test_training_on_an_emulating_cpu_runs_float32_and_says_so(force, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_bf16_native", lambda: False)
    seen = set()

    def loss_fn(model, batch):
        seen.add(torch.is_autocast_enabled("cpu"))
        return mse_loss(model, batch)

    train(make_model(), loss_fn, ImageSet(8), None, config(epochs=1, precision="bf16"),
          verbose=True, force_precision=force)
    err = capsys.readouterr().err
    assert seen == {force}
    assert ("no native bf16" in err) is not force
