"""The NPZ contract: round trips, legacy layouts, conversion options, validation, atomic writes."""

from __future__ import annotations

import gzip
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from _corrupt import patch_zip_headers
from pinn.data import ScanData, read_npz, write_npz
from pinn.errors import ConfigError, DataError

M, N = 6, 8


def contract(**overrides):
    """A valid reference-style dict of arrays (amplitudes, centre positions)."""
    rng = np.random.default_rng(0)
    arrays = dict(
        diffraction=rng.random((M, N, N)).astype(np.float32),
        xcoords=rng.random(M) * 40 + 10,
        ycoords=rng.random(M) * 30 + 10,
        probeGuess=(rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
    )
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def save(tmp_path, name="scan.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def scan_with_everything():
    g = torch.Generator().manual_seed(1)
    return ScanData(
        diffraction=torch.rand(M, N, N, generator=g),
        positions=torch.rand(M, 2, generator=g, dtype=torch.float64) * 30 + 4,  # inside
        probe=torch.randn(N, N, generator=g, dtype=torch.complex64),
        object=torch.randn(40, 50, generator=g, dtype=torch.complex64),
        scan_index=torch.arange(M) % 2,
        positions_start=torch.rand(M, 2, generator=g, dtype=torch.float64),
        counts=True,
    )


def assert_same_scan(a: ScanData, b: ScanData):
    assert torch.equal(a.diffraction, b.diffraction)
    assert torch.equal(a.positions, b.positions)
    assert torch.equal(a.probe, b.probe)
    assert (a.object is None) == (b.object is None)
    if a.object is not None:
        assert torch.equal(a.object, b.object)
    assert torch.equal(a.scan_index, b.scan_index)
    assert a.counts == b.counts


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("compress", [False, True])
def test_write_then_read_is_identical(tmp_path, compress):
    scan = scan_with_everything()
    path = tmp_path / "out.npz"
    write_npz(path, scan, compress=compress)
    back = read_npz(path)
    assert_same_scan(scan, back)
    assert torch.equal(back.positions_start, scan.positions_start)


def test_written_file_follows_the_contract(tmp_path):
    scan = scan_with_everything()
    path = tmp_path / "out.npz"
    write_npz(path, scan)
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"diffraction", "xcoords", "ycoords", "xcoords_start",
                                "ycoords_start", "probeGuess", "objectGuess", "scan_index",
                                "amplitude_from_counts"}
        assert f["diffraction"].dtype == np.float32 and f["diffraction"].shape == (M, N, N)
        assert f["probeGuess"].dtype == np.complex64
        np.testing.assert_array_equal(f["xcoords"], scan.positions[:, 1].numpy())
        np.testing.assert_array_equal(f["ycoords"], scan.positions[:, 0].numpy())
        np.testing.assert_array_equal(f["xcoords_start"], scan.positions_start[:, 1].numpy())
        assert f["amplitude_from_counts"].dtype == bool and bool(f["amplitude_from_counts"])


def test_start_positions_default_to_positions_when_written(tmp_path):
    scan = ScanData(diffraction=torch.ones(M, N, N),
                    positions=torch.arange(2.0 * M).reshape(M, 2), probe=torch.ones(N, N))
    write_npz(tmp_path / "a.npz", scan)
    back = read_npz(tmp_path / "a.npz")
    assert torch.equal(back.positions_start, scan.positions)
    assert back.object is None and back.counts is False


def test_reads_reference_keys_and_orders_positions_yx(tmp_path):
    arrays = contract(objectGuess=np.ones((50, 60), np.complex64), scan_index=np.arange(M))
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.positions[:, 0].numpy(), arrays["ycoords"])
    np.testing.assert_array_equal(scan.positions[:, 1].numpy(), arrays["xcoords"])
    np.testing.assert_array_equal(scan.diffraction.numpy(), arrays["diffraction"])
    assert scan.object.shape == (50, 60) and scan.scan_index.tolist() == list(range(M))
    assert scan.positions_start is None and scan.counts is False


# ----------------------------------------------------------------------------- legacy layouts


def test_legacy_diff3d_key(tmp_path):
    arrays = contract()
    arrays["diff3d"] = arrays.pop("diffraction")
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction.numpy(), arrays["diff3d"])


def test_diff3d_is_preferred_like_the_reference(tmp_path):
    arrays = contract()
    arrays["diff3d"] = arrays["diffraction"] * 2
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction.numpy(), arrays["diff3d"])


def test_legacy_nnm_layout_is_transposed(tmp_path):
    arrays = contract()
    mnn = arrays["diffraction"]
    arrays["diffraction"] = np.ascontiguousarray(mnn.transpose(1, 2, 0))  # (N, N, M)
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction.numpy(), mnn)
    forced = read_npz(save(tmp_path, "b.npz", **arrays), layout="NNM")
    np.testing.assert_array_equal(forced.diffraction.numpy(), mnn)


def test_forcing_mnn_on_an_nnm_file_is_an_error(tmp_path):
    arrays = contract()
    arrays["diffraction"] = np.ascontiguousarray(arrays["diffraction"].transpose(1, 2, 0))
    with pytest.raises(DataError, match="layout='NNM'"):
        read_npz(save(tmp_path, **arrays), layout="MNN")


def test_trailing_channel_is_squeezed(tmp_path):
    arrays = contract()
    mnn = arrays["diffraction"]
    arrays["diffraction"] = mnn[..., None]  # (M, N, N, 1)
    np.testing.assert_array_equal(read_npz(save(tmp_path, **arrays)).diffraction.numpy(), mnn)


def test_uint16_diffraction_is_accepted(tmp_path):
    arrays = contract(diffraction=np.full((M, N, N), 7, np.uint16))
    assert torch.all(read_npz(save(tmp_path, **arrays)).diffraction == 7.0)


# ----------------------------------------------------------------------------- options


def test_counts_become_square_root_amplitudes(tmp_path):
    counts = np.arange(M * N * N, dtype=np.float32).reshape(M, N, N)
    scan = read_npz(save(tmp_path, **contract(diffraction=counts)), values="counts")
    np.testing.assert_array_equal(scan.diffraction.numpy(), np.sqrt(counts))
    assert scan.counts is True
    assert scan.measured_nphotons == pytest.approx(counts.sum((1, 2)).mean())


def test_counts_flag_written_by_pinn_is_read_in_auto_mode_only(tmp_path):
    arrays = contract(amplitude_from_counts=np.array(True))
    path = save(tmp_path, **arrays)
    assert read_npz(path).counts is True
    assert read_npz(path, values="amplitude").counts is False


def test_corner_zero_frequency_is_shifted_to_the_centre(tmp_path):
    d = np.zeros((M, N, N), np.float32)
    d[:, 0, 0] = 5.0  # zero frequency at the corner
    d[:, 1, 0] = 2.0  # first positive frequency in y
    d[:, N - 1, 0] = 3.0  # first negative frequency in y
    scan = read_npz(save(tmp_path, **contract(diffraction=d)), zero_frequency="corner")
    out = scan.diffraction.numpy()
    assert np.all(out[:, N // 2, N // 2] == 5.0)
    assert np.all(out[:, N // 2 + 1, N // 2] == 2.0)
    assert np.all(out[:, N // 2 - 1, N // 2] == 3.0)
    assert out.sum() == pytest.approx(M * 10.0)


def test_corner_positions_move_by_half_a_window(tmp_path):
    arrays = contract(xcoords_start=np.arange(M, dtype=float),
                      ycoords_start=-np.arange(M, dtype=float))
    scan = read_npz(save(tmp_path, **arrays), positions="corner")
    np.testing.assert_array_equal(scan.positions[:, 1].numpy(), arrays["xcoords"] + N // 2)
    np.testing.assert_array_equal(scan.positions[:, 0].numpy(), arrays["ycoords"] + N // 2)
    np.testing.assert_array_equal(scan.positions_start[:, 1].numpy(), np.arange(M) + N // 2)
    np.testing.assert_array_equal(scan.positions_start[:, 0].numpy(), -np.arange(M) + N // 2)


@pytest.mark.parametrize("option, value", [
    ("values", "intensity"), ("zero_frequency", "middle"), ("positions", "topleft"),
    ("layout", "NMN")])
def test_unknown_options_are_config_errors(tmp_path, option, value):
    with pytest.raises(ConfigError, match=option):
        read_npz(save(tmp_path, **contract()), **{option: value})


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("overrides, key", [
    (dict(xcoords=None), "xcoords"),
    (dict(ycoords=None), "ycoords"),
    (dict(probeGuess=None), "probeGuess"),
])
def test_missing_key_is_named(tmp_path, overrides, key):
    with pytest.raises(DataError, match=f"no '{key}'"):
        read_npz(save(tmp_path, **contract(**overrides)))


def test_missing_diffraction_names_both_keys(tmp_path):
    arrays = contract()
    arrays["patterns"] = arrays.pop("diffraction")
    with pytest.raises(DataError, match="'diffraction'.*'diff3d'"):
        read_npz(save(tmp_path, **arrays))


@pytest.mark.parametrize("wrong, right", [
    ("probe_guess", "probeGuess"), ("probeguess", "probeGuess"), ("xcoord", "xcoords")])
def test_misnamed_key_gets_a_suggestion(tmp_path, wrong, right):
    arrays = contract()
    arrays[wrong] = arrays.pop(right)
    with pytest.raises(DataError, match=f"Did you mean '{wrong}'\\? Rename it to '{right}'"):
        read_npz(save(tmp_path, **arrays))


def test_start_coordinates_come_in_pairs(tmp_path):
    with pytest.raises(DataError, match="ycoords_start"):
        read_npz(save(tmp_path, **contract(xcoords_start=np.zeros(M))))


@pytest.mark.parametrize("overrides, key", [
    (dict(xcoords=np.zeros((M, 1))), "xcoords"),
    (dict(ycoords=np.zeros(M - 1)), "ycoords"),
    (dict(diffraction=np.ones((M, N), np.float32)), "diffraction"),
    (dict(diffraction=np.ones((M, N, N, 2), np.float32)), "diffraction"),
    (dict(diffraction=np.ones((M + 1, N, N), np.float32)), "diffraction"),
    (dict(diffraction=np.ones((M, N, N + 2), np.float32)), "diffraction"),
    (dict(probeGuess=np.ones((N + 1, N + 1), np.complex64)), "probeGuess"),
    (dict(objectGuess=np.ones(5, np.complex64)), "objectGuess"),
    (dict(scan_index=np.zeros(M + 2, int)), "scan_index"),
    (dict(xcoords_start=np.zeros(M - 1), ycoords_start=np.zeros(M - 1)), "xcoords_start"),
])
def test_wrong_shapes_name_the_key(tmp_path, overrides, key):
    with pytest.raises(DataError, match=key):
        read_npz(save(tmp_path, **contract(**overrides)))


def bad_values():
    nan_d = np.ones((M, N, N), np.float32)
    nan_d[2, 3, 4] = np.nan
    neg_d = np.ones((M, N, N), np.float32)
    neg_d[1, 0, 0] = -0.5
    return [
        (dict(diffraction=nan_d), "'diffraction'.*NaN"),
        (dict(diffraction=neg_d), "'diffraction'.*negative"),
        (dict(diffraction=np.ones((M, N, N), np.complex64)), "'diffraction'.*complex"),
        (dict(xcoords=np.array([np.inf] + [0.0] * (M - 1))), "'xcoords'.*infinite"),
        (dict(ycoords=np.array([np.nan] * M)), "'ycoords'.*NaN"),
        (dict(probeGuess=np.full((N, N), np.nan, np.complex64)), "'probeGuess'.*NaN"),
        (dict(objectGuess=np.full((9, 9), np.inf, np.complex64)), "'objectGuess'.*infinite"),
        (dict(scan_index=np.full(M, 0.5)), "'scan_index'.*integer"),
        (dict(xcoords=np.array(["a"] * M)), "'xcoords'.*dtype"),
    ]


@pytest.mark.parametrize("overrides, pattern", bad_values())
def test_bad_values_name_the_key(tmp_path, overrides, pattern):
    with pytest.raises(DataError, match=pattern):
        read_npz(save(tmp_path, **contract(**overrides)))


def test_negative_counts_are_rejected(tmp_path):
    counts = np.ones((M, N, N), np.float32)
    counts[0, 0, 0] = -1
    with pytest.raises(DataError, match="'diffraction'.*negative"):
        read_npz(save(tmp_path, **contract(diffraction=counts)), values="counts")


@pytest.mark.parametrize("overrides, key", [
    (dict(diffraction=np.zeros((0, N, N), np.float32), xcoords=np.zeros(0), ycoords=np.zeros(0)),
     "xcoords"),
    (dict(diffraction=np.zeros((M, 0, 0), np.float32)), "diffraction"),
])
def test_empty_arrays_are_rejected(tmp_path, overrides, key):
    with pytest.raises(DataError, match=f"'{key}'.*empty"):
        read_npz(save(tmp_path, **contract(**overrides)))


def test_pickled_object_arrays_are_refused(tmp_path):
    arrays = contract(objectGuess=np.array(None, dtype=object))
    with pytest.raises(DataError, match="'objectGuess' is a pickled object array"):
        read_npz(save(tmp_path, **arrays))


def test_reference_metadata_is_ignored_without_unpickling(tmp_path, monkeypatch):
    arrays = contract(_metadata=np.array('{"nphotons": 1e9}', dtype=object))
    path = save(tmp_path, **arrays)
    real_load = np.load

    def load_without_pickle(*args, **kwargs):
        assert kwargs.get("allow_pickle") is False
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", load_without_pickle)
    scan = read_npz(path)
    assert scan.n_scans == M


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="absent.npz: no such file"):
        read_npz(tmp_path / "absent.npz")


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("diffraction = 1, 2, 3\n")
    with pytest.raises(DataError, match="text.npz is not a readable .npz"):
        read_npz(path)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@pytest.mark.parametrize("name, content, says", [
    ("text.npz", b"diffraction = 1, 2, 3\n", "is a text file, not an .npz archive"),
    ("h5.npz", HDF5_SIGNATURE + bytes(range(256)) * 4, "is an HDF5 file, not an .npz archive"),
    # a user block before the superblock moves the signature to byte 512
    ("userblock.h5", b"\x01" * 512 + HDF5_SIGNATURE + bytes(64), "is an HDF5 file"),
    ("pickle.npz", pickle.dumps({"diffraction": [1, 2]}, protocol=4), "is a Python pickle"),
    ("gz.npz", gzip.compress(b"x" * 100), "is a gzip-compressed file"),
    ("empty.npz", b"", "is empty"),
    ("noise.npz", bytes([0xAB, 0x00, 0xFF, 0x13]) * 64, "is not an .npz archive"),
])
def test_a_file_that_is_not_an_npz_is_named_and_unpickling_never_suggested(tmp_path, name,
                                                                          content, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_npz(path)
    message = str(info.value)
    assert says in message, message
    assert "pickled" not in message and "allow_pickle" not in message, message
    assert "numpy.savez" in message  # how to get a scan pinn reads


def test_a_real_hdf5_file_is_recognised(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f["diffraction"] = np.ones((3, 4, 4), np.float32)
    with pytest.raises(DataError, match="is an HDF5 file.*h5py"):
        read_npz(path)


def test_an_error_ending_in_a_full_stop_is_not_followed_by_another(tmp_path, monkeypatch):
    path = save(tmp_path, **contract())

    def failing_load(*args, **kwargs):
        raise ValueError("the member is damaged.")

    monkeypatch.setattr(np, "load", failing_load)
    with pytest.raises(DataError) as info:
        read_npz(path)
    assert "damaged. Re-create" in str(info.value) and ".." not in str(info.value)


def test_a_single_npy_array_is_not_a_scan(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.ones(3))
    with pytest.raises(DataError, match="single .npy array"):
        read_npz(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, keep):
    path = save(tmp_path, **contract())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="scan.npz"):
        read_npz(path)


def test_corrupted_member(tmp_path):
    path = tmp_path / "z.npz"
    np.savez_compressed(path, **contract(diffraction=np.zeros((M, N, N), np.float32)))
    data = bytearray(path.read_bytes())
    start = data.index(b"diffraction.npy") + 40
    data[start:start + 20] = b"\xff" * 20
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="z.npz"):
        read_npz(path)


# ----------------------------------------------------------------------------- atomic writes


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "scan.npz"
    old = scan_with_everything()
    write_npz(path, old)
    before = path.read_bytes()

    def half_write(handle, **arrays):
        handle.write(b"PK\x03\x04 half of an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_write)
    new = ScanData(diffraction=torch.zeros(M, N, N), positions=torch.zeros(M, 2),
                   probe=torch.ones(N, N))
    with pytest.raises(OSError, match="disk full"):
        write_npz(path, new)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["scan.npz"]
    assert_same_scan(read_npz(path), old)


def test_failed_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "scan.npz"
    write_npz(path, scan_with_everything())
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_npz(path, ScanData(diffraction=torch.zeros(1, N, N), positions=torch.zeros(1, 2),
                                 probe=torch.ones(N, N)))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["scan.npz"]


def test_write_needs_an_existing_directory_and_a_scan(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        write_npz(tmp_path / "nope" / "a.npz", scan_with_everything())
    with pytest.raises(DataError, match="ScanData"):
        write_npz(tmp_path / "a.npz", {"diffraction": 1})


def test_malformed_counts_flag_is_named(tmp_path):
    with pytest.raises(DataError, match="'amplitude_from_counts'"):
        read_npz(save(tmp_path, **contract(amplitude_from_counts=np.array(["yes"]))))


def test_complex_coordinates_are_rejected(tmp_path):
    with pytest.raises(DataError, match="'xcoords' is complex"):
        read_npz(save(tmp_path, **contract(xcoords=np.zeros(M, np.complex128))))


# ------------------------------------------------------------------ more malformed input


def test_zero_dimensional_arrays_report_their_shape(tmp_path):
    with pytest.raises(DataError, match=r"'xcoords' has shape \(\); expected \(M,\)"):
        read_npz(save(tmp_path, **contract(xcoords=np.float64(3.0))))
    with pytest.raises(DataError, match=r"'diffraction' has shape \(\)"):
        read_npz(save(tmp_path, **contract(diffraction=np.float32(1.0))))


def test_extended_precision_arrays_are_read(tmp_path):
    arrays = contract()
    arrays["diffraction"] = arrays["diffraction"].astype(np.longdouble)
    arrays["probeGuess"] = arrays["probeGuess"].astype(np.clongdouble)
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.diffraction.numpy(),
                                  arrays["diffraction"].astype(np.float32))
    np.testing.assert_array_equal(scan.probe.numpy(), arrays["probeGuess"].astype(np.complex64))


def npy_bytes(shape, dtype="<f8", payload=b"", header=None):
    """A version 1.0 ``.npy`` member whose header claims ``shape`` but holds ``payload``."""
    if header is None:
        header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
            + payload)


def replace_member(source, target, name, data):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            out.writestr(info, data if info.filename == name else src.read(info))


@pytest.mark.parametrize("shape", [(10**12,), (2**40, 2**30), (10**8,)])
def test_member_claiming_more_data_than_it_holds_is_refused_before_allocating(tmp_path, shape,
                                                                              monkeypatch):
    path = save(tmp_path, "ok.npz", **contract())
    replace_member(path, tmp_path / "bomb.npz", "xcoords.npy", npy_bytes(shape, payload=b"\0" * 64))
    real_empty = np.empty

    def guarded_empty(shape, *args, **kwargs):
        assert np.prod(shape, dtype=object) < 10**6, "allocated the claimed array"
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", guarded_empty)
    with pytest.raises(DataError, match="'xcoords'.*claims"):
        read_npz(tmp_path / "bomb.npz")


@pytest.mark.parametrize("patch", [dict(method=99), dict(flags=0x1), dict(flags=0x20)],
                         ids=["unknown compression", "encrypted", "patched data"])
def test_zip_features_numpy_cannot_read_are_data_errors(tmp_path, patch):
    path = save(tmp_path, **contract())
    patch_zip_headers(path, "xcoords.npy", **patch)
    with pytest.raises(DataError, match="scan.npz"):
        read_npz(path)


@pytest.mark.parametrize("header", [
    "{'descr': '<f8', 'fortran_order': False, 'shape': (6, }",  # tokenize.TokenError
    "{'descr': '<f8', 'fortran_order': False, 'shape': (6,)) }",  # SyntaxError, twice
    "{'descr': '<f8', 'fortran_order': False, 'shape': " + "(" * 200 + ")" * 200 + "}",
])
def test_npy_header_that_is_not_a_literal(tmp_path, header):
    path = save(tmp_path, "ok.npz", **contract())
    replace_member(path, tmp_path / "bad.npz", "xcoords.npy",
                   npy_bytes(None, header=header, payload=b"\0" * 48))
    with pytest.raises(DataError, match="bad.npz: cannot read 'xcoords'"):
        read_npz(tmp_path / "bad.npz")


def test_all_positions_at_one_point_are_refused(tmp_path):
    arrays = contract(xcoords=np.full(M, 12.0), ycoords=np.full(M, 20.0))
    with pytest.raises(DataError, match="'xcoords'/'ycoords': all 6 scan points are at the same "
                                        r"position \(y, x\) = \(20, 12\)"):
        read_npz(save(tmp_path, **arrays))


def test_repeated_positions_are_accepted(tmp_path):
    xs, ys = np.repeat([10.0, 20.0, 30.0], 2), np.repeat([15.0, 25.0, 35.0], 2)
    scan = read_npz(save(tmp_path, **contract(xcoords=xs, ycoords=ys)))
    assert scan.positions[:, 1].tolist() == xs.tolist()


def test_windows_outside_the_object_are_refused(tmp_path):
    corners = np.array([0.0, 6, 16, 26, 32, 32])  # object 40 wide, N = 8: corners 0 .. 32
    arrays = contract(xcoords=corners, ycoords=np.full(M, 10.0) + np.arange(M),
                      objectGuess=np.ones((40, 40), np.complex64))
    path = save(tmp_path, **arrays)
    with pytest.raises(DataError, match=r"1 of 6 positions put the 8 x 8 window partly outside "
                                        r"'objectGuess' \(40 x 40\), the first at index 0, "
                                        r"\(y, x\) = \(10, 0\).*positions='corner'"):
        read_npz(path)  # corners read as centres
    assert read_npz(path, positions="corner").n_scans == M
    arrays["xcoords"] = corners + 1  # the last window now ends one pixel past the object
    with pytest.raises(DataError, match="2 of 6 positions.*index 4.*positions='center'"):
        read_npz(save(tmp_path, **arrays), positions="corner")


def test_object_smaller_than_a_window_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"'objectGuess' is 5 x 30 pixels, smaller than one 8 x 8"):
        read_npz(save(tmp_path, **contract(objectGuess=np.ones((5, 30), np.complex64))))


def test_probe_modes_round_trip(tmp_path):
    """All modes are written ('probe_modes'), with the dominant one as 'probeGuess' for readers
    of the reference's contract, and read back as they were."""
    g = torch.Generator().manual_seed(5)
    modes = torch.randn(3, N, N, generator=g, dtype=torch.complex64)
    modes[2] *= 4
    scan = ScanData(diffraction=torch.rand(M, N, N, generator=g),
                    positions=torch.rand(M, 2, generator=g, dtype=torch.float64) * 30,
                    probe=modes)
    write_npz(tmp_path / "m.npz", scan)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["probe_modes"], modes.numpy())
        np.testing.assert_array_equal(f["probeGuess"], modes[2].numpy())
    back = read_npz(tmp_path / "m.npz")
    assert torch.equal(back.probe, modes)
    one = ScanData(diffraction=scan.diffraction, positions=scan.positions, probe=modes[:1])
    write_npz(tmp_path / "one.npz", one)
    assert read_npz(tmp_path / "one.npz").probe.shape == (1, N, N)


def test_probe_guess_may_hold_modes(tmp_path):
    rng = np.random.default_rng(7)
    arrays = contract(probeGuess=(rng.random((2, N, N)) + 1j).astype(np.complex64))
    scan = read_npz(save(tmp_path, **arrays))
    np.testing.assert_array_equal(scan.probe.numpy(), arrays["probeGuess"])


@pytest.mark.parametrize("key, value, match", [
    ("probeGuess", np.ones((0, N, N), np.complex64), r"'probeGuess' has shape \(0, 8, 8\)"),
    ("probeGuess", np.ones((2, N - 1, N - 1), np.complex64), r"'probeGuess' has shape \(2, 7"),
    ("probe_modes", np.ones((N, N), np.complex64), r"'probe_modes' has shape \(8, 8\)"),
    ("probe_modes", np.ones((2, 4, 4), np.complex64), r"'probe_modes' has shape \(2, 4, 4\)"),
    ("probe_modes", np.full((2, N, N), np.nan, np.complex64), "'probe_modes'.*NaN"),
])
def test_bad_probe_modes_are_one_line_errors(tmp_path, key, value, match):
    with pytest.raises(DataError, match=match) as info:
        read_npz(save(tmp_path, **contract(**{key: value})))
    assert "\n" not in str(info.value)
