"""Tests of pinn.evaluate: reconstruction NPZ round trip, ground-truth reading, the evaluated
region, and the DataErrors for missing, pickled, malformed and non-NPZ files."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch

from pinn.errors import DataError
from pinn.evaluate import (MIN_MATCH_CORRELATION, evaluate, evaluate_files, largest_rectangle,
                           load_ground_truth, load_reconstruction, poor_match)
from pinn.reconstruct import Reconstruction, save_reconstruction


def smooth_object(shape=(80, 90), seed=0):
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    gain = np.exp(-2 * np.pi**2 * 9 * (ky**2 + kx**2))

    def field():
        f = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gain).real
        return (f - f.mean()) / f.std()

    return torch.from_numpy(((0.8 + 0.1 * field()) * np.exp(0.4j * field())).astype(np.complex64))


def cut(truth, origin, shape, coverage=None):
    """A Reconstruction that is exactly the truth under a canvas at ``origin``."""
    coverage = torch.full(shape, 4.0) if coverage is None else coverage
    result = Reconstruction(object=torch.zeros(shape, dtype=torch.complex64), coverage=coverage,
                            origin_px=origin, crop_px=32, n_positions=5, n_groups=5)
    obj = result.object_window(truth) * (coverage > 0)
    return Reconstruction(object=obj, coverage=coverage, origin_px=origin, crop_px=32,
                          n_positions=5, n_groups=5)


@pytest.fixture
def truth():
    return smooth_object()


# ---------------------------------------------------------------------------- evaluate()


def test_exact_reconstruction_scores_perfectly(truth):
    metrics = evaluate(cut(truth, (10, 12), (50, 60)), truth)
    assert metrics["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["phase_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["shift_y_px"] == 0 and metrics["shift_x_px"] == 0
    assert math.isinf(metrics["amplitude_psnr"]) or metrics["amplitude_psnr"] > 80


@pytest.mark.parametrize("origin", [(10, 13), (11, 12), (9, 11)])
def test_the_canvas_origin_places_the_ground_truth(truth, origin):
    """A reconstruction whose recorded origin is one pixel off no longer matches."""
    good = cut(truth, (10, 12), (50, 60))
    wrong = Reconstruction(object=good.object, coverage=good.coverage, origin_px=origin,
                           crop_px=32, n_positions=5, n_groups=5)
    assert evaluate(wrong, truth, register=False)["amplitude_ssim"] < 0.96


def test_uncovered_pixels_are_not_scored(truth):
    """Coverage shaped like an irregular scan: an exact reconstruction of the covered part
    still scores 1 (the bounding box would include pixels no patch reached)."""
    coverage = torch.zeros(50, 60)
    coverage[5:45, 5:40] = 3.0
    coverage[20:30, 40:55] = 3.0
    result = cut(truth, (10, 12), (50, 60), coverage)
    metrics = evaluate(result, truth)
    assert metrics["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["shift_y_px"] == 0 and metrics["shift_x_px"] == 0
    assert metrics["n_pixels"] == (40 - 4) * (35 - 4)  # the rectangle less the 2 px border


def noisy_blurred(obj: torch.Tensor, noise: float, seed: int = 1) -> torch.Tensor:
    """A degraded reconstruction of ``obj``: blurred over about 2 px, with complex noise."""
    rng = np.random.default_rng(seed)
    array = obj.numpy().astype(np.complex128)
    ky = np.fft.fftfreq(array.shape[0])[:, None]
    kx = np.fft.fftfreq(array.shape[1])[None, :]
    blurred = np.fft.ifft2(np.fft.fft2(array) * np.exp(-2 * np.pi**2 * 4 * (ky**2 + kx**2)))
    blurred += noise * (rng.standard_normal(array.shape) + 1j * rng.standard_normal(array.shape))
    return torch.from_numpy(blurred.astype(np.complex64))


def test_the_truth_of_another_scan_is_a_poor_match(truth):
    """A reconstruction scored against the ground truth of a different scan (another object
    of the same kind) gets a warning; its own truth, even blurred and noisy, does not."""
    own = cut(truth, (10, 12), (50, 60))
    degraded = Reconstruction(object=noisy_blurred(own.object, 0.05), coverage=own.coverage,
                              origin_px=own.origin_px, crop_px=32, n_positions=5, n_groups=5)
    good = evaluate(degraded, truth)
    assert good["amplitude_ssim"] < 0.9  # really degraded ...
    assert good["amplitude_correlation"] > MIN_MATCH_CORRELATION  # ... but recognisable
    assert poor_match(good) is None
    for seed in (1, 2, 3):
        metrics = evaluate(degraded, smooth_object(seed=seed))
        warning = poor_match(metrics)
        assert warning is not None and "same scan" in warning
        assert f"{metrics['amplitude_correlation']:.2f}" in warning and "\n" not in warning


def test_a_pure_phase_object_is_matched_by_its_phase(truth):
    phase_only = torch.exp(1j * truth.angle())
    own = cut(phase_only, (10, 12), (50, 60))
    metrics = evaluate(own, phase_only)
    assert math.isnan(metrics["amplitude_correlation"])
    assert metrics["phase_correlation"] == pytest.approx(1.0, abs=1e-6)
    assert poor_match(metrics) is None
    other = torch.exp(1j * smooth_object(seed=4).angle())
    assert "phase correlation" in poor_match(evaluate(own, other))


def test_canvas_larger_than_the_truth(truth):
    result = cut(truth, (-8, -5), (100, 110))  # extends past every edge of the 80 x 90 truth
    assert evaluate(result, truth)["amplitude_ssim"] == pytest.approx(1.0, abs=1e-6)


def test_no_overlap_with_the_truth(truth):
    result = cut(truth, (500, 500), (40, 40))
    with pytest.raises(DataError, match="does not overlap"):
        evaluate(result, truth)


def test_largest_rectangle():
    mask = np.zeros((6, 8), bool)
    assert not largest_rectangle(mask).any()
    mask[1:5, 1:4] = True  # 12 pixels
    mask[2:4, 4:8] = True  # joins into a 2 x 7 = 14 pixel strip
    out = largest_rectangle(mask)
    assert out.sum() == 14 and out[2:4, 1:8].all()
    assert not (out & ~mask).any()
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((7, 9)) < 0.7
        out = largest_rectangle(mask)
        assert not (out & ~mask).any()
        rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
        assert out.sum() == len(rows) * len(cols)  # a rectangle
        best = max(((y1 - y0) * (x1 - x0) for y0 in range(7) for y1 in range(y0 + 1, 8)
                    for x0 in range(9) for x1 in range(x0 + 1, 10)
                    if mask[y0:y1, x0:x1].all()), default=0)
        assert out.sum() == best


# ------------------------------------------------------------------------------ files


def test_reconstruction_round_trip(truth, tmp_path):
    result = cut(truth, (3, -4), (40, 50))
    paths = save_reconstruction(result, tmp_path)
    back = load_reconstruction(paths["npz"])
    assert torch.equal(back.object, result.object)
    assert torch.equal(back.coverage, result.coverage)
    assert back.origin_px == (3, -4) and back.crop_px == 32
    np.savez(tmp_path / "truth.npz", objectGuess=truth.numpy())
    assert torch.equal(load_ground_truth(tmp_path / "truth.npz"), truth)
    assert evaluate_files(paths["npz"], tmp_path / "truth.npz") == evaluate(result, truth)


def test_ground_truth_key_object_and_real_images(tmp_path):
    np.savez(tmp_path / "a.npz", object=np.ones((9, 9)))
    gt = load_ground_truth(tmp_path / "a.npz")
    assert gt.dtype == torch.complex64 and gt.shape == (9, 9)


def test_ground_truth_beside_a_pickled_metadata_key(tmp_path, truth):
    """The reference implementation's NPZ files carry a pickled ``_metadata``; it is not read."""
    np.savez(tmp_path / "ref.npz", objectGuess=truth.numpy(),
             _metadata=np.array([{"a": 1}], dtype=object))
    assert torch.equal(load_ground_truth(tmp_path / "ref.npz"), truth)


def good_reconstruction(**changes):
    arrays = {"object": np.ones((20, 20), np.complex64), "coverage": np.ones((20, 20)),
              "origin_px": np.array([1, 2]), "crop_px": np.array(32)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize("changes, match", [
    ({"coverage": None}, r"lacks \['coverage'\]"),
    ({"object": None, "origin_px": None}, r"lacks \['object', 'origin_px'\]"),
    ({"coverage": np.ones((20, 21))}, "must be the same"),
    ({"object": np.ones(20), "coverage": np.ones(20)}, "must be the same"),
    ({"origin_px": np.array([1, 2, 3])}, "origin_px"),
    ({"crop_px": np.array([32, 32])}, "crop_px"),
    ({"object": np.array([["a"] * 20] * 20)}, "dtype"),
    ({"object": np.ones((0, 0)), "coverage": np.ones((0, 0))}, "non-empty"),
    ({"coverage": -np.ones((20, 20))}, "coverage must be finite real weights >= 0"),
    ({"coverage": np.full((20, 20), np.nan)}, "coverage must be finite"),
    ({"coverage": np.ones((20, 20), complex)}, "coverage must be finite real"),
    ({"origin_px": np.array([np.nan, 2])}, r"origin_px is \[nan, 2.0\]; expected integers"),
    ({"origin_px": np.array([1.5, 2])}, "origin_px is .*expected integers"),
    ({"crop_px": np.array(np.inf)}, r"crop_px is \[inf\]"),
    ({"crop_px": np.array(1e300)}, "crop_px is"),
    ({"origin_px": np.array([1, 2], "timedelta64[s]")}, "'origin_px' has dtype timedelta64"),
])
def test_malformed_reconstruction(tmp_path, changes, match):
    np.savez(tmp_path / "r.npz", **good_reconstruction(**changes))
    with pytest.raises(DataError, match=match):
        load_reconstruction(tmp_path / "r.npz")


def test_pickled_arrays_are_refused(tmp_path):
    pickled = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "r.npz", **good_reconstruction(object=pickled))
    with pytest.raises(DataError, match="pickled"):
        load_reconstruction(tmp_path / "r.npz")
    np.savez(tmp_path / "g.npz", objectGuess=pickled)
    with pytest.raises(DataError, match="pickled"):
        load_ground_truth(tmp_path / "g.npz")


@pytest.mark.parametrize("write", [
    lambda p: p.write_text("not an npz at all"),
    lambda p: p.write_bytes(b""),
    lambda p: np.save(open(p, "wb"), np.zeros(3)),
    lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 40),
])
@pytest.mark.parametrize("reader", [load_reconstruction, load_ground_truth])
def test_non_npz_files(tmp_path, write, reader):
    path = tmp_path / "file.npz"
    write(path)
    with pytest.raises(DataError) as info:
        reader(path)
    assert "file.npz" in str(info.value)
    assert "holds pickled" not in str(info.value)


def test_truncated_npz(tmp_path, truth):
    np.savez(tmp_path / "t.npz", objectGuess=truth.numpy())
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError):
        load_ground_truth(tmp_path / "t.npz")


@pytest.mark.parametrize("reader", [load_reconstruction, load_ground_truth])
def test_missing_file(tmp_path, reader):
    with pytest.raises(DataError, match="no such file"):
        reader(tmp_path / "absent.npz")


def test_ground_truth_errors(tmp_path):
    np.savez(tmp_path / "a.npz", diffraction=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match=r"no objectGuess \(keys: \['diffraction'\]\)"):
        load_ground_truth(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", objectGuess=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="expected a numeric"):
        load_ground_truth(tmp_path / "b.npz")
    bad = np.ones((4, 4))
    bad[1, 1] = np.nan
    np.savez(tmp_path / "c.npz", objectGuess=bad)
    with pytest.raises(DataError, match="NaN"):
        load_ground_truth(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", objectGuess=np.ones((4, 4), "timedelta64[s]"))
    with pytest.raises(DataError, match="expected a numeric"):
        load_ground_truth(tmp_path / "d.npz")


def test_zip_member_that_is_not_an_array(tmp_path):
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as archive:
        archive.writestr("objectGuess.npy", b"garbage, not an npy header")
    with pytest.raises(DataError):
        load_ground_truth(tmp_path / "z.npz")
