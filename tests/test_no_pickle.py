"""Nothing pinn reads is ever unpickled (unpickling a file can run arbitrary code).

Two checks: the source of ``pinn/`` never calls an unpickling loader (``torch.load``, the pickle
family, ``numpy.load`` without ``allow_pickle=False``), and every reader works with unpickling
made impossible at run time."""

from __future__ import annotations

import ast
import bz2
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import pinn
from pinn.archive import load_archive, read_manifest, save_archive
from pinn.config import ModelConfig
from pinn.data import load_scan, read_npz, read_tike_npz, simulate, write_npz
from pinn.data.load import read_probe
from pinn.engine.checkpoint import load_checkpoint, save_checkpoint
from pinn.errors import DataError
from pinn.evaluate import load_ground_truth, load_reconstruction
from pinn.model import build_model
from pinn.reconstruct import Reconstruction, save_reconstruction

PACKAGE = Path(pinn.__file__).parent

#: Modules whose import means (de)serialising Python objects.
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve",
                    "marshal", "copyreg"}
#: Calls that unpickle, by their dotted name.
UNPICKLING_CALLS = {"torch.load", "torch.jit.load", "torch.serialization.load", "pickle.load",
                    "pickle.loads", "pickle.Unpickler", "pandas.read_pickle", "pd.read_pickle"}
#: Reviewed uses, by file and exact source text, with the reason they are safe.
ALLOWED = {
    # the Ptychodus worker checks that its own in-memory exception survives the trip to its
    # parent process (pickled by multiprocessing); no file or foreign data is involved
    ("interop/ptychodus/worker.py", "import pickle"),
    ("interop/ptychodus/worker.py", "pickle.loads(pickle.dumps(exc))"),
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


def findings(source: str, name: str) -> list[str]:
    """The unpickling risks in one module's source, as ``name:line: text``."""
    found = []

    def flag(node: ast.AST, why: str) -> None:
        text = ast.get_source_segment(source, node) or why
        if (name, text) not in ALLOWED:
            found.append(f"{name}:{node.lineno}: {why}: {text}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLING_MODULES:
                    flag(node, "imports a pickling module")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in PICKLING_MODULES:
                flag(node, "imports from a pickling module")
            if module == "torch" and any(a.name == "load" for a in node.names):
                flag(node, "imports torch.load")
        elif isinstance(node, ast.Call):
            callee = dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if callee in UNPICKLING_CALLS:
                flag(node, "calls an unpickling loader")
            if callee in ("np.load", "numpy.load") and not (
                    isinstance(keywords.get("allow_pickle"), ast.Constant)
                    and keywords["allow_pickle"].value is False):
                flag(node, "numpy.load without allow_pickle=False")
            for key in ("allow_pickle", "weights_only"):
                value = keywords.get(key)
                if value is not None and not (isinstance(value, ast.Constant)
                                              and value.value is (key == "weights_only")):
                    flag(node, f"{key} is not {key == 'weights_only'}")
    return found


def test_the_source_never_unpickles():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30
    problems = [problem for path in modules
                for problem in findings(path.read_text(), path.relative_to(PACKAGE).as_posix())]
    assert problems == []


@pytest.mark.parametrize("source", [
    "import torch\nstate = torch.load(path)",
    "import pickle",
    "from pickle import loads",
    "import dill as d",
    "from torch import load",
    "import numpy as np\nnp.load(path)",
    "import numpy as np\nnp.load(path, allow_pickle=True)",
    "import numpy\nnumpy.load(path, allow_pickle=flag)",
    "x = np.lib.format.read_array(f, allow_pickle=True)",
    "torch.load(path, weights_only=False)",
    "import pandas as pd\npd.read_pickle(path)",
])
def test_the_source_check_catches(source):
    assert findings(source, "example.py")


def test_the_source_check_accepts():
    assert findings("import numpy as np\nnp.load(path, allow_pickle=False)\n"
                    "from safetensors.torch import load\nload(data)", "example.py") == []


# --------------------------------------------------------------------------- at run time


@pytest.fixture
def no_unpickling(monkeypatch):
    """Make every way of unpickling raise (numpy's object arrays use pickle.load)."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler", "_Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.jit, "load", refuse)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One of every kind of file pinn reads, written by pinn (or like tike)."""
    root = tmp_path_factory.mktemp("files")
    scan = simulate(n_scans=6, size=64, object_size=96, photons=1e4, seed=0)
    write_npz(root / "scan.npz", scan)
    (root / "scan.npz.bz2").write_bytes(bz2.compress((root / "scan.npz").read_bytes()))
    buffer = io.BytesIO()
    np.savez(buffer, data=np.ones((1, 6, 64, 64), np.float32),
             probe=np.ones((1, 1, 64, 64), np.complex64),
             scan=np.arange(12, dtype=np.float32).reshape(1, 6, 2) * 3)
    (root / "tike.npz.bz2").write_bytes(bz2.compress(buffer.getvalue()))
    # the reference's pickled metadata beside the arrays pinn needs
    np.savez(root / "reference.npz", **dict(np.load(root / "scan.npz", allow_pickle=False)),
             _metadata=np.array({"nphotons": 1e9}, dtype=object))
    model = build_model(ModelConfig(n_filters_scale=1), probe=scan.probe, intensity_scale=2.0)
    save_archive(model, root / "model")
    save_archive(model, root / "model.zip")
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(root / "last.safetensors", model, optimizer, {"training": {"epoch": 1}},
                    extra_tensors={"torch_rng": torch.get_rng_state()})
    save_reconstruction(Reconstruction(object=torch.ones(24, 24, dtype=torch.complex64),
                                       coverage=torch.ones(24, 24), origin_px=(0, 0),
                                       crop_px=8, n_positions=6, n_groups=6), root / "recon")
    return root


@pytest.mark.usefixtures("no_unpickling", "one_thread")
def test_every_reader_works_without_unpickling(files):
    for name in ("scan.npz", "scan.npz.bz2", "reference.npz"):
        assert read_npz(files / name).n_scans == 6
        assert load_scan(files / name).n_scans == 6
        assert read_probe(files / name).shape == (64, 64)
    assert read_tike_npz(files / "tike.npz.bz2").n_scans == 6
    assert load_scan(files / "tike.npz.bz2").n_scans == 6
    for name in ("model", "model.zip"):
        assert load_archive(files / name).config.model.n_filters_scale == 1
        assert read_manifest(files / name)["format"] == "pinn-model"
    tensors, meta = load_checkpoint(files / "last.safetensors")
    assert meta["state"]["training"]["epoch"] == 1 and "extra/torch_rng" in tensors
    assert load_reconstruction(files / "recon" / "reconstruction.npz").crop_px == 8
    assert load_ground_truth(files / "scan.npz").shape == (96, 96)


@pytest.mark.usefixtures("no_unpickling")
def test_pickled_arrays_are_refused_not_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", probe=np.array([{"payload": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled object array"):
        read_probe(tmp_path / "evil.npz")
