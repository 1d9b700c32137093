"""The README's Python example runs as written (with fewer epochs and positions)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    (example,) = [block for block in python_blocks() if "train_scan" in block]
    shortened = example.replace("epochs=80", "epochs=1").replace("n_scans=225", "n_scans=36")
    assert shortened.count("epochs=1") == 1 and "n_scans=36" in shortened, \
        "the README example changed; update this test's substitutions"
    monkeypatch.chdir(tmp_path)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        namespace: dict = {}
        exec(compile(shortened, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert "amplitude_ssim" in output.getvalue()
    assert namespace["result"].object.shape == namespace["result"].coverage.shape


def test_the_hdf5_conversion_example_gives_a_scan_pinn_reads(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    import numpy as np

    from pinn.data import read_npz, simulate

    (example,) = [block for block in python_blocks() if "h5py.File" in block]
    scan = simulate("lines", n_scans=16, size=64, photons=1e5, seed=0, scan="raster")
    monkeypatch.chdir(tmp_path)
    with h5py.File("scan.h5", "w") as f:
        f["diffraction"] = scan.diffraction.numpy()
        f["xcoords"] = scan.positions[:, 1].numpy()
        f["ycoords"] = scan.positions[:, 0].numpy()
        f["probe"] = scan.probe.numpy()
    exec(compile(example, str(README), "exec"), {})  # noqa: S102 - our own docs
    converted = read_npz("scan.npz")
    assert converted.n_scans == 16
    assert np.array_equal(converted.diffraction.numpy(), scan.diffraction.numpy())


def test_the_readme_names_every_test_that_needs_the_shared_folder():
    """Tests that read ../shared (through the fixtures_dir or data_dir fixtures, or the parity
    fixture index) skip in a clone on its own; the README must say which."""
    tests = README.parent / "tests"
    needs_shared = re.compile(r"\b(fixtures_dir|data_dir)\b|fixture_cases\.(cases|index|FIXTURES)")
    users = sorted(path.relative_to(README.parent).as_posix() for path in tests.rglob("test_*.py")
                   if path.name != "test_readme.py" and needs_shared.search(path.read_text()))
    assert len(users) >= 4  # the search itself works
    section = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    missing = [path for path in users if f"`{path}`" not in section]
    assert not missing, f"README.md's set-up section does not name {missing}"
