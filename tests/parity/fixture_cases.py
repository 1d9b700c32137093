"""The golden arrays of the TensorFlow reference, and how to replay them.

``index.json`` in the fixture folder lists every fixture with its op, inputs and outputs.
:func:`replay` runs one fixture's op with an implementation module that has the reference's
NumPy API (``tf_reference`` or ``conventions``) and returns every output named in the index.
:func:`tolerance` gives the allowed ``max|error| / max|reference|`` of each output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "upstream_tf"

TOL = 1e-5
# The in-model merge divides by the centre-window coverage + 0.001, which multiplies the patch
# border (and its float32 rounding) by 1000: its canvas and everything computed from it at
# gridsize 2 (where patches overlap at fractional offsets) get a looser bound.
TOL_MERGED = 1e-4


def rel_error(actual, expected) -> float:
    """``max|actual - expected| / max|expected|`` (absolute when ``expected`` is all zero)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    assert np.all(np.isfinite(actual)), "non-finite values"
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual.astype(np.complex128) - expected.astype(np.complex128)).max())
    return diff / scale if scale > 0 else diff


def index() -> dict:
    """The fixture index, or {} when the shared fixtures are not present."""
    path = FIXTURES / "index.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def cases() -> list[tuple[str, str]]:
    """Every (fixture, output) pair of the index, sorted."""
    return sorted((name, out) for name, entry in index().items() for out in entry["outputs"])


def load(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files if key != "_meta"}


def _padded(d: dict) -> int:
    return int(d["in_N"]) + (int(d["in_gridsize"]) - 1) * int(d["in_offset"]) + int(
        d["in_max_position_jitter"])


def replay(impl, name: str) -> dict:
    """Run fixture ``name`` through ``impl``; returns {output name: array}."""
    op = index()[name]["op"]
    d = load(name)
    if op == "translate":
        return {"out": impl.translate(d["in_imgs"], d["in_offsets"])}
    if op == "diffract":
        return {"amplitude": impl.pad_and_diffract(d["in_x"]),
                "padded": d["in_x"]}  # the layer passes its input through unchanged
    if op == "extract_patches":
        patches = impl.extract_patches_position(d["in_imgs"], d["in_offsets_xy"], int(d["in_N"]))
        c = int(d["in_gridsize"]) ** 2
        channel = patches[..., 0].reshape(-1, c, *patches.shape[1:3]).transpose(0, 2, 3, 1)
        return {"patches": patches, "patches_channel": channel}
    if op == "reassemble_patches":
        assert not bool(d["in_batched"]), "only the per-group merge is modelled"
        merged, norm = impl.reassemble_patches(d["in_channels"], d["in_offsets_xy"], _padded(d))
        return {"merged": merged, "norm": norm}
    if op == "reassemble_position":
        return {"canvas": impl.reassemble_position(d["in_patches"], d["in_offsets"],
                                                   int(d["in_M"]))}
    if op == "illuminate":
        out, used, mask = impl.probe_illumination(d["in_x"], d["in_probe"],
                                                  bool(d["in_probe.mask"]))
        n = int(d["in_N"])
        return {"illuminated": out, "probe_out": np.reshape(used, (1, 1, n, n, 1)),
                "mask": np.reshape(mask, (n, n, 1))}
    if op == "poisson_nll":
        loss, mean, full = impl.negloglik(d["in_y_true"], d["in_y_pred"])
        return {"loss": loss, "loss_mean": np.reshape(mean, ()), "tfp_nll": full}
    if op == "illuminate_and_diffract":
        assert not bool(d["in_draw_poisson"]), "only the noise-free simulator is modelled"
        x, y_i, y_phi, scale = impl.illuminate_and_diffract(
            d["in_Y_I"], d["in_Y_phi"], d["in_probe"], float(d["in_nphotons"]),
            int(d["in_gridsize"]))
        return {"X": x, "Y_I": y_i, "Y_phi": y_phi, "intensity_scale": np.float64(scale)}
    if op == "physics_forward":
        assert bool(d["in_object.big"]), "only object.big = True is modelled"
        return impl.physics_forward(d["in_obj"], d["in_offsets_xy"], d["in_probe"],
                                    float(d["in_intensity_scale"]), _padded(d),
                                    bool(d["in_probe.mask"]))
    raise AssertionError(f"fixture {name} has an op {op!r} that no test replays")


def tolerance(name: str, output: str) -> float:
    op = index()[name]["op"]
    if op == "reassemble_patches" and output == "merged":
        return TOL_MERGED
    if op == "physics_forward":
        if output in ("padded_obj", "trimmed_obj"):
            return TOL_MERGED
        if int(load(name)["in_gridsize"]) > 1:
            return TOL_MERGED
    return TOL


def expected(name: str, output: str) -> np.ndarray:
    return load(name)[f"out_{output}"]
