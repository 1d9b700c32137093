"""Atomic writes, for every file pinn writes: a disk that fills up part-way through a write (or
an fsync that fails) leaves the previous file intact, no temporary file and no new directory,
and the error names the destination."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from _corrupt import fill_disk_after
from pinn import cli
from pinn.archive import save_archive
from pinn.atomic import TEMP_SUFFIX, atomic_write_bytes, atomic_write_files
from pinn.atomic import remove_stale_temporaries
from pinn.config import ModelConfig
from pinn.data import simulate, write_npz
from pinn.engine.checkpoint import save_checkpoint
from pinn.model import build_model
from pinn.reconstruct import Reconstruction, save_reconstruction

pytestmark = pytest.mark.usefixtures("one_thread")


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def models():
    a = build_model(ModelConfig(n_filters_scale=1), intensity_scale=2.0)
    b = build_model(ModelConfig(n_filters_scale=1, probe_trainable=True), intensity_scale=3.0)
    return a, b


def reconstruction(value: complex) -> Reconstruction:
    obj = torch.full((24, 24), value, dtype=torch.complex64)
    return Reconstruction(object=obj, coverage=torch.ones(24, 24), origin_px=(0, 0),
                          crop_px=8, n_positions=4, n_groups=4)


def write_scan(root: Path, version: int) -> Path:
    write_npz(root / "scan.npz", simulate(n_scans=6, size=8, photons=1e3, seed=version))
    return root / "scan.npz"


def write_archive_dir(root: Path, version: int, models) -> Path:
    return save_archive(models[version], root / "model")


def write_archive_zip(root: Path, version: int, models) -> Path:
    return save_archive(models[version], root / "model.zip")


def write_checkpoint(root: Path, version: int, models) -> Path:
    model = models[version]
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(root / "last.safetensors", model, optimizer, {"loop": {"epoch": version}})
    return root / "last.safetensors"


def write_reconstruction(root: Path, version: int) -> Path:
    save_reconstruction(reconstruction(1.0 + version), root / "recon")
    return root / "recon"


def write_metrics(root: Path, version: int) -> Path:
    atomic_write_bytes(root / "metrics.json", b'{"ssim": %d}\n' % version)
    return root / "metrics.json"


WRITERS = {"npz": write_scan, "archive directory": write_archive_dir,
           "archive zip": write_archive_zip, "checkpoint": write_checkpoint,
           "reconstruction": write_reconstruction, "metrics json": write_metrics}


def call(writer, root, version, models):
    if writer in (write_archive_dir, write_archive_zip, write_checkpoint):
        return writer(root, version, models)
    return writer(root, version)


def fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("failure", ["no space at all", "no space mid-way", "fsync fails"])
@pytest.mark.parametrize("name", list(WRITERS))
def test_a_failed_write_keeps_the_previous_file(name, failure, tmp_path, models, monkeypatch):
    writer = WRITERS[name]
    destination = call(writer, tmp_path, 0, models)
    before = snapshot(tmp_path)
    if failure == "fsync fails":
        fail_fsync(monkeypatch)
    else:
        size = sum(len(data) for data in before.values() if data is not None)
        fill_disk_after(monkeypatch, 0 if failure == "no space at all" else size // 2)
    with pytest.raises(OSError) as raised:
        call(writer, tmp_path, 1, models)
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename is not None
    assert Path(raised.value.filename) in (destination, *destination.glob("*"))
    assert snapshot(tmp_path) == before  # the old bytes, no temporary, no staging directory
    call(writer, tmp_path, 1, models)  # and the next write goes through
    assert snapshot(tmp_path) != before


def test_a_failed_first_write_leaves_no_directory(tmp_path, monkeypatch):
    fill_disk_after(monkeypatch, 100)
    with pytest.raises(OSError):
        save_reconstruction(reconstruction(1.0), tmp_path / "new" / "recon")
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "a" / "b" / "m.json", b"{}" * 100)
    assert list(tmp_path.iterdir()) == []


def test_files_are_replaced_together_or_not_at_all(tmp_path, monkeypatch):
    paths = [tmp_path / "one.bin", tmp_path / "two.bin", tmp_path / "three.bin"]
    atomic_write_files({p: b"old" for p in paths})
    fill_disk_after(monkeypatch, 1500)  # the first file fits, the second does not
    with pytest.raises(OSError) as raised:
        atomic_write_files({p: b"n" * 1000 for p in paths})
    monkeypatch.undo()
    assert raised.value.filename == str(paths[1])
    assert [p.read_bytes() for p in paths] == [b"old"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_a_reconstruction_and_its_figures_are_replaced_together(tmp_path, monkeypatch):
    write_reconstruction(tmp_path, 0)
    before = snapshot(tmp_path)
    fill_disk_after(monkeypatch, len(before["recon/reconstruction.npz"]) + 100)
    with pytest.raises(OSError) as raised:  # the new NPZ fits, its figures do not
        write_reconstruction(tmp_path, 1)
    monkeypatch.undo()
    assert Path(raised.value.filename).suffix == ".png"
    assert snapshot(tmp_path) == before


def test_a_killed_write_leaves_only_a_temporary_that_is_cleaned_up(tmp_path):
    (tmp_path / "last.safetensors").write_bytes(b"previous")
    (tmp_path / f".last.safetensors.x1{TEMP_SUFFIX}").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "notes.txt"]


def test_errors_name_the_destination_not_the_temporary(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(tmp_path / "file" / "m.json", b"{}")
    assert raised.value.filename == str(tmp_path / "file" / "m.json")


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    save_reconstruction(reconstruction(1.0), tmp_path)
    np.savez(tmp_path / "truth.npz", objectGuess=np.ones((24, 24), np.complex64))
    (tmp_path / "m.json").write_text("previous\n")
    fill_disk_after(monkeypatch, 10)
    status = cli.main(["evaluate", str(tmp_path / "reconstruction.npz"), "--reference",
                       str(tmp_path / "truth.npz"), "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert status == 2
    expected = f"pinn: error: No space left on device (simulated): {tmp_path / 'm.json'}"
    assert err.splitlines() == [expected]
    assert (tmp_path / "m.json").read_text() == "previous\n"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.bin"
        atomic_write_bytes(fresh, b"x")
        assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"new")
        assert kept.stat().st_mode & 0o777 == 0o640
        assert kept.read_bytes() == b"new"
    finally:
        os.umask(old)
