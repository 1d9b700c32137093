"""Fuzzing the readers: mutated NPZ scans, model archives (zip and directory) and training
checkpoints must give a result or one of pinn's documented exceptions (a
:class:`pinn.errors.PinnError` with a one-line message), never a KeyError, IndexError,
struct.error, zipfile error, UnicodeDecodeError, RuntimeError or a crash.

Examples per test come from the hypothesis profile (tests/conftest.py): 25 in CI,
``PINN_HYPOTHESIS_PROFILE=long`` for 1000.
"""

from __future__ import annotations

import bz2
import copy
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from pinn.archive import load_archive, save_archive
from pinn.config import ModelConfig
from pinn.data import GroupDataset, group_positions, load_scan, read_npz, read_tike_npz
from pinn.data.load import read_probe
from pinn.engine import checkpoint as ckpt
from pinn.errors import PinnError
from pinn.evaluate import evaluate, load_ground_truth, load_reconstruction
from pinn.model import build_model
from pinn.reconstruct import Reconstruction

pytestmark = pytest.mark.usefixtures("one_thread")

M, N = 6, 8
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def expect_pinn_errors(read, *args, **kwargs):
    """``read(*args, **kwargs)``; any exception must be a PinnError with a one-line message."""
    try:
        return read(*args, **kwargs)
    except PinnError as exc:
        assert "\n" not in str(exc), f"{type(exc).__name__} over several lines: {exc}"
        return None


# ----------------------------------------------------------------------------- valid inputs


def contract_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "diffraction": rng.random((M, N, N)).astype(np.float32),
        "xcoords": np.array([5.0, 9, 13, 7, 11, 15]),
        "ycoords": np.array([5.0, 6, 7, 12, 13, 14]),
        "xcoords_start": np.array([5.0, 9, 13, 7, 11, 15]),
        "ycoords_start": np.array([5.0, 6, 7, 12, 13, 14]),
        "probeGuess": (rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        "objectGuess": np.ones((24, 24), np.complex64),
        "scan_index": np.zeros(M, np.int64),
        "amplitude_from_counts": np.array(False),
    }


def tike_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "data": rng.poisson(5.0, size=(1, M, N, N)).astype(np.float32),
        "probe": np.ones((1, 1, 1, 1, N, N), np.complex64),
        "scan": rng.uniform(-5, 5, size=(1, M, 2)).astype(np.float32),
    }


def reconstruction_arrays() -> dict[str, np.ndarray]:
    return {"object": np.ones((24, 24), np.complex64), "coverage": np.ones((24, 24), np.float32),
            "origin_px": np.array([0, 0]), "crop_px": np.array(8),
            "amplitude": np.ones((24, 24), np.float32), "phase": np.zeros((24, 24), np.float32)}


BASES = {"contract": contract_arrays, "tike": tike_arrays, "reconstruction": reconstruction_arrays}


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.register_buffer("shift", torch.zeros(2))


def tiny_checkpoint_parts():
    model = TinyNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.linear(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


class Files(dict):
    """File contents by kind (a short repr keeps hypothesis' failure reports readable)."""

    def __repr__(self) -> str:
        return f"Files({sorted(self)})"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Valid files of every kind, as bytes, and a scratch directory for the mutated ones."""
    root = tmp_path_factory.mktemp("fuzz")
    files = Files({
        "contract": npz_bytes(contract_arrays()),
        "contract_deflated": npz_bytes(contract_arrays(), compress=True),
        "tike": npz_bytes(tike_arrays()),
        "reconstruction": npz_bytes(reconstruction_arrays()),
    })
    files["contract_bz2"] = bz2.compress(files["contract"])
    model = build_model(ModelConfig(n_filters_scale=1), intensity_scale=2.0)
    save_archive(model, root / "model.zip")
    save_archive(model, root / "model")
    files["archive_zip"] = (root / "model.zip").read_bytes()
    files["config.json"] = (root / "model" / "config.json").read_bytes()
    files["model.safetensors"] = (root / "model" / "model.safetensors").read_bytes()
    tiny, optimizer = tiny_checkpoint_parts()
    ckpt.save_checkpoint(root / "last.safetensors", tiny, optimizer,
                         {"loop": {"epoch": 1, "history": [{"loss": 0.5}]}},
                         extra_tensors={"torch_rng": torch.get_rng_state()[:64]})
    files["checkpoint"] = (root / "last.safetensors").read_bytes()
    scratch = root / "scratch"
    scratch.mkdir()
    return files, scratch


# ----------------------------------------------------------------------------- mutations


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("overwrite"), st.floats(0, 1, exclude_max=True),
              st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("replace"), st.binary(max_size=512)),
)


def mutate(data: bytes, mutations) -> bytes:
    """Apply byte-level damage: bit flips, truncation, insertion, overwrites, replacement."""
    data = bytearray(data)
    for kind, *args in mutations:
        at = int(args[0] * len(data)) if kind != "replace" else 0
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << args[1]
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = args[1]
        elif kind == "overwrite":
            data[at:at + len(args[1])] = args[1]
        elif kind == "replace":
            data = bytearray(args[0])
    return bytes(data)


read_options = st.fixed_dictionaries({}, optional={
    "values": st.sampled_from(["auto", "amplitude", "counts", "intensity"]),
    "zero_frequency": st.sampled_from(["center", "corner"]),
    "positions": st.sampled_from(["center", "corner"]),
    "layout": st.sampled_from(["auto", "MNN", "NNM"]),
})


def read_every_way(path: Path, options: dict, crop_px) -> None:
    """Every reader of scan files, and what training does next with a scan that was read."""
    scan = expect_pinn_errors(load_scan, path, crop_px=crop_px,
                              **{k: v for k, v in options.items() if k != "values"
                                 or v != "auto"})
    contract = {k: v for k, v in options.items() if k in ("values", "zero_frequency",
                                                          "positions", "layout")}
    expect_pinn_errors(read_npz, path, **contract)
    expect_pinn_errors(read_tike_npz, path, **{k: v for k, v in contract.items()
                                               if k != "layout" and v != "auto"})
    expect_pinn_errors(read_probe, path)
    truth = expect_pinn_errors(load_ground_truth, path)
    result = expect_pinn_errors(load_reconstruction, path)
    if result is not None:
        expect_pinn_errors(evaluate, result, torch.ones(24, 24, dtype=torch.complex64))
    if truth is not None:
        expect_pinn_errors(evaluate, RECONSTRUCTION, truth)
    if scan is not None:
        for gridsize in (1, 2):
            groups = expect_pinn_errors(group_positions, scan.positions, gridsize)
            if groups is not None:
                expect_pinn_errors(GroupDataset, scan, groups)


RECONSTRUCTION = Reconstruction(object=torch.ones(24, 24, dtype=torch.complex64),
                                coverage=torch.ones(24, 24), origin_px=(0, 0), crop_px=8,
                                n_positions=6, n_groups=6)


@FUZZ
@given(kind=st.sampled_from(["contract", "contract_deflated", "contract_bz2", "tike",
                             "reconstruction"]),
       mutations=st.lists(mutation, min_size=1, max_size=4), options=read_options,
       crop_px=st.sampled_from([None, 4, 8, 3, 16]))
def test_damaged_npz_bytes(base, kind, mutations, options, crop_px):
    files, scratch = base
    path = scratch / "scan.npz"
    path.write_bytes(mutate(files[kind], mutations))
    read_every_way(path, options, crop_px)


DTYPES = [np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
          np.clongdouble, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
          np.uint64, np.bool_, object, "U3", "S3", "datetime64[s]", "timedelta64[s]",
          [("a", "<f4")]]
SPECIAL = [np.nan, np.inf, -np.inf, -1.0, -1e-30, 0.0, 1e300, 2.0**64]


@st.composite
def edited_arrays(draw, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Structural damage: dropped or renamed keys, other dtypes or shapes, special values."""
    arrays = dict(arrays)
    for _ in range(draw(st.integers(1, 3))):
        if not arrays:
            break
        key = draw(st.sampled_from(sorted(arrays)))
        value = arrays[key]
        op = draw(st.sampled_from(["drop", "rename", "dtype", "shape", "value", "scalar",
                                   "empty", "add"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if op == "drop":
                del arrays[key]
            elif op == "rename":
                new = draw(st.sampled_from([key.lower(), key.upper(), key[:-1], key + "s",
                                            "diff3d", "data", "probe", "scan", "objectGuess"])
                           | st.text(min_size=1, max_size=8))
                arrays[new] = arrays.pop(key)
            elif op == "dtype":
                try:
                    arrays[key] = value.astype(draw(st.sampled_from(DTYPES)))
                except (TypeError, ValueError, OverflowError):
                    arrays[key] = np.array([b"x"] * max(value.size, 1))
            elif op == "shape":
                shaped = draw(st.sampled_from(["add_front", "add_back", "transpose", "flatten",
                                               "first", "slice", "tile"]))
                if shaped == "add_front":
                    arrays[key] = value[None]
                elif shaped == "add_back":
                    arrays[key] = value[..., None]
                elif shaped == "transpose":
                    arrays[key] = value.T
                elif shaped == "flatten":
                    arrays[key] = value.reshape(-1)
                elif shaped == "first" and value.ndim and len(value):
                    arrays[key] = value[0]
                elif shaped == "slice" and value.ndim:
                    arrays[key] = value[:draw(st.integers(0, value.shape[0]))]
                elif shaped == "tile" and value.ndim:
                    arrays[key] = np.concatenate([value, value[:draw(st.integers(0, 3))]])
            elif op == "value" and value.size and value.dtype.kind in "fciu":
                changed = value.copy()
                flat = changed.reshape(-1)
                special = draw(st.sampled_from(SPECIAL))
                try:
                    flat[draw(st.integers(0, flat.size - 1))] = special
                except (OverflowError, ValueError):  # NaN or inf into an integer array
                    flat[0] = -1 if value.dtype.kind == "i" else 0
                arrays[key] = changed
            elif op == "scalar":
                arrays[key] = np.array(draw(st.sampled_from([0.0, -1.0, np.nan, 1, True])))
            elif op == "empty":
                arrays[key] = np.zeros((0,) + value.shape[1:], value.dtype)
            elif op == "add":
                arrays[draw(st.text(min_size=1, max_size=6))] = value
    return arrays


@FUZZ
@given(data=st.data(), kind=st.sampled_from(sorted(BASES)), compress=st.booleans(),
       options=read_options, crop_px=st.sampled_from([None, 4, 8, 3]))
def test_damaged_npz_contents(base, data, kind, compress, options, crop_px):
    _, scratch = base
    arrays = data.draw(edited_arrays(BASES[kind]()))
    path = scratch / "edited.npz"
    path.write_bytes(npz_bytes(arrays, compress))
    read_every_way(path, options, crop_px)


# ------------------------------------------------------------------------------ archives


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_damaged_zip_archive(base, mutations):
    files, scratch = base
    path = scratch / "model.zip"
    path.write_bytes(mutate(files["archive_zip"], mutations))
    expect_pinn_errors(load_archive, path)


@FUZZ
@given(member=st.sampled_from(["config.json", "model.safetensors"]),
       mutations=st.lists(mutation, min_size=1, max_size=4))
def test_damaged_directory_archive(base, member, mutations):
    files, scratch = base
    path = scratch / "model"
    path.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        data = files[name]
        (path / name).write_bytes(mutate(data, mutations) if name == member else data)
    expect_pinn_errors(load_archive, path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6)


def json_paths(value, prefix=()):
    """Every path into a JSON value (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_paths(child, (*prefix, index))


@st.composite
def edited_json(draw, document):
    """Replace, delete or add a value somewhere in a JSON document."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(json_paths(document))))
        new = draw(json_values)
        if not path:
            document = new
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[path[-1]] = new
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = new
        else:
            parent.append(new)
    return document


@FUZZ
@given(data=st.data())
def test_edited_archive_config(base, data):
    files, scratch = base
    manifest = json.loads(files["config.json"])
    edited = data.draw(edited_json(manifest))
    path = scratch / "model"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(edited))
    (path / "model.safetensors").write_bytes(files["model.safetensors"])
    expect_pinn_errors(load_archive, path)


def safetensors_header(data: bytes) -> tuple[dict, bytes]:
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + length]), data[8 + length:]


def with_header(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


@FUZZ
@given(data=st.data())
def test_edited_weights_header_with_a_valid_checksum(base, data):
    """Damage that gets past the checksum (it is recomputed): the tensor table itself."""
    files, scratch = base
    header, body = safetensors_header(files["model.safetensors"])
    weights = with_header(data.draw(edited_json(header)), body)
    manifest = json.loads(files["config.json"])
    manifest["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    path = scratch / "model"
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(manifest))
    (path / "model.safetensors").write_bytes(weights)
    expect_pinn_errors(load_archive, path)


# --------------------------------------------------------------------------- checkpoints


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_damaged_checkpoint(base, mutations):
    files, scratch = base
    path = scratch / "last.safetensors"
    path.write_bytes(mutate(files["checkpoint"], mutations))
    loaded = expect_pinn_errors(ckpt.load_checkpoint, path)
    if loaded is not None:
        model, optimizer = tiny_checkpoint_parts()
        expect_pinn_errors(ckpt.restore, *loaded, model, optimizer)


@FUZZ
@given(data=st.data())
def test_edited_checkpoint_metadata_with_a_valid_checksum(base, data):
    """A hand-edited checkpoint whose checksum was recomputed reaches restore()."""
    files, scratch = base
    path = scratch / "last.safetensors"
    path.write_bytes(files["checkpoint"])
    tensors, meta = ckpt.load_checkpoint(path)
    edited = data.draw(edited_json({k: v for k, v in meta.items() if k != "content_sha256"}))
    if isinstance(edited, dict):
        edited["content_sha256"] = ckpt._content_digest(tensors, edited)
    header, _ = safetensors_header(files["checkpoint"])
    path.write_bytes(save_safetensors(load_safetensors(files["checkpoint"]),
                                      metadata={**header["__metadata__"],
                                                "pinn_checkpoint": json.dumps(edited)}))
    loaded = expect_pinn_errors(ckpt.load_checkpoint, path)
    if loaded is not None:
        model, optimizer = tiny_checkpoint_parts()
        expect_pinn_errors(ckpt.restore, *loaded, model, optimizer)
