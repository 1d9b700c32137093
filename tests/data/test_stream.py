"""Streaming scans (pinn.data.stream): what a stream reads equals read_npz for every option and
storage form, reads happen in chunks, the energy pass matches pattern_energy bit for bit, and
broken files are refused with the same (or a more precise) message. Also the ScanSource
protocol of ScanData and normalization_from_energy."""

from __future__ import annotations

import bz2
import io
import itertools
import zipfile

import numpy as np
import pytest
import torch
from _corrupt import patch_zip_headers
from hypothesis import given
from hypothesis import strategies as st

from pinn.data import (
    NpzScanStream,
    ScanData,
    ScanSource,
    load_scan,
    normalization_factor,
    normalization_from_energy,
    open_scan_stream,
    read_npz,
    write_npz,
)
from pinn.data.scan import ENERGY_CHUNK, pattern_energy
from pinn.data.stream import energy_blocks, energy_chunk_patterns
from pinn.errors import ConfigError, DataError

M, N = 12, 8


def contract(**overrides):
    """A valid dict of NPZ-contract arrays: amplitudes with some zeros, positions inside a
    64 x 64 object for either positions convention, start positions, a scan index."""
    rng = np.random.default_rng(0)
    diffraction = (rng.random((M, N, N)) * 5).astype(np.float32)
    diffraction[diffraction < 0.5] = 0
    arrays = {
        "diffraction": diffraction,
        "xcoords": rng.random(M) * 30 + 10,
        "ycoords": rng.random(M) * 30 + 10,
        "xcoords_start": rng.random(M) * 30 + 10,
        "ycoords_start": rng.random(M) * 30 + 10,
        "probeGuess": (rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
        "objectGuess": (rng.random((64, 64)) * np.exp(1j * rng.random((64, 64)))).astype(
            np.complex64),
        "scan_index": np.arange(M) % 3,
    }
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def save(tmp_path, name="scan.npz", compress=False, **arrays):
    path = tmp_path / name
    (np.savez_compressed if compress else np.savez)(path, **arrays)
    return path


def assert_same(stream: NpzScanStream, scan: ScanData):
    """Every attribute of the stream equals the in-memory scan's, bit for bit."""
    assert (stream.N, stream.n_scans) == (scan.N, scan.n_scans)
    assert torch.equal(stream.read(torch.arange(scan.n_scans)), scan.diffraction)
    assert torch.equal(stream.positions, scan.positions)
    assert stream.positions.dtype == torch.float64
    assert (stream.positions_start is None) == (scan.positions_start is None)
    if scan.positions_start is not None:
        assert torch.equal(stream.positions_start, scan.positions_start)
    assert torch.equal(stream.probe, scan.probe) and stream.probe.dtype == torch.complex64
    assert (stream.object is None) == (scan.object is None)
    if scan.object is not None:
        assert torch.equal(stream.object, scan.object)
    assert torch.equal(stream.scan_index, scan.scan_index)
    assert stream.counts == scan.counts
    assert torch.equal(stream.pattern_energy(), pattern_energy(scan.diffraction))
    whole = stream.to_scan()
    assert torch.equal(whole.diffraction, scan.diffraction)
    assert torch.equal(whole.positions, scan.positions)


def same_outcome(path, **options):
    """read_npz and a stream agree: equal results, or DataErrors with the same message."""
    try:
        scan = read_npz(path, **options)
    except DataError as exc:
        with pytest.raises(DataError) as info, open_scan_stream(path, **options) as stream:
            stream.to_scan()
        assert str(info.value) == str(exc)
        return None
    with open_scan_stream(path, **options) as stream:
        assert_same(stream, scan)
    return scan


# ---------------------------------------------------------------- equal to read_npz


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("values", ["auto", "amplitude", "counts"])
@pytest.mark.parametrize("zero_frequency", ["center", "corner"])
@pytest.mark.parametrize("positions", ["center", "corner"])
def test_stream_equals_read_npz_for_every_option(tmp_path, compress, values, zero_frequency,
                                                 positions):
    path = save(tmp_path, compress=compress, amplitude_from_counts=np.array(True),
                **contract())
    scan = same_outcome(path, values=values, zero_frequency=zero_frequency,
                        positions=positions)
    assert scan is not None
    assert scan.counts == (values != "amplitude")
    with open_scan_stream(path, values=values, zero_frequency=zero_frequency,
                          positions=positions) as stream:
        rng = np.random.default_rng(1)
        for _ in range(5):  # any order, repeats, single patterns
            index = torch.from_numpy(rng.integers(0, M, size=rng.integers(1, 2 * M)))
            assert torch.equal(stream.read(index), scan.diffraction[index])
        assert torch.equal(stream.read(torch.tensor([7])), scan.diffraction[7:8])


@pytest.mark.parametrize("probe_shape", [(N, N), (3, N, N)], ids=["one mode", "three modes"])
def test_write_npz_files_stream_back_identically(tmp_path, probe_shape):
    g = torch.Generator().manual_seed(3)
    scan = ScanData(diffraction=torch.rand(M, N, N, generator=g),
                    positions=torch.rand(M, 2, generator=g, dtype=torch.float64) * 20 + 8,
                    probe=torch.randn(probe_shape, generator=g, dtype=torch.complex64),
                    counts=True,
                    positions_start=torch.rand(M, 2, generator=g, dtype=torch.float64))
    for compress in (False, True):
        write_npz(tmp_path / "w.npz", scan, compress=compress)
        with open_scan_stream(tmp_path / "w.npz") as stream:
            assert_same(stream, scan)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "<f2", "<u2", ">u2", "<i4", "<u1",
                                   "longdouble"])
def test_stored_dtypes_convert_like_read_npz(tmp_path, dtype):
    rng = np.random.default_rng(2)
    stored = (rng.random((M, N, N)) * 200).astype(np.dtype(dtype))
    for values in ("amplitude", "counts"):
        path = save(tmp_path, **contract(diffraction=stored))
        assert same_outcome(path, values=values) is not None


def test_legacy_key_and_trailing_channel(tmp_path):
    base = contract()
    diff3d = base.pop("diffraction")[..., None]  # (M, N, N, 1)
    path = save(tmp_path, diff3d=diff3d, **base)
    assert same_outcome(path) is not None
    with open_scan_stream(path) as stream:
        assert stream.key == "diff3d"


def test_minimal_file_without_optional_keys(tmp_path):
    arrays = contract(objectGuess=None, scan_index=None, xcoords_start=None,
                      ycoords_start=None)
    scan = same_outcome(save(tmp_path, **arrays))
    assert scan.object is None and scan.positions_start is None
    assert scan.scan_index.tolist() == [0] * M


def test_bz2_file_streams(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **contract())
    path = tmp_path / "scan.npz.bz2"
    path.write_bytes(bz2.compress(buffer.getvalue()))
    assert same_outcome(path, zero_frequency="corner") is not None


def test_fortran_ordered_single_pattern_is_read(tmp_path):
    arrays = contract(diffraction=np.asfortranarray(contract()["diffraction"][:1]),
                      xcoords=np.array([20.0]), ycoords=np.array([30.0]), xcoords_start=None,
                      ycoords_start=None, scan_index=None)
    assert not arrays["diffraction"][0].flags.c_contiguous
    assert same_outcome(save(tmp_path, **arrays)) is not None


# ---------------------------------------------------------------------- chunked reads


class CountingStream(NpzScanStream):
    """Records every byte range the stream reads from the file."""

    def __init__(self, *args, **kwargs):
        self.reads: list[tuple[int, int]] = []  # (offset, bytes)
        super().__init__(*args, **kwargs)

    def _read_at(self, view, offset):
        self.reads.append((offset, len(view)))
        super()._read_at(view, offset)


def test_read_touches_only_the_requested_patterns(tmp_path):
    path = save(tmp_path, **contract())
    with CountingStream(path) as stream:
        size = N * N * 4
        stream.reads.clear()
        stream.read(torch.tensor([3, 4, 5, 9, 3]))  # two runs, a repeat read once
        assert [length for _, length in stream.reads] == [3 * size, size]
        assert stream.reads[1][0] - stream.reads[0][0] == 6 * size  # pattern 9 after 3
        stream.reads.clear()
        stream.read(torch.arange(M))
        assert stream.reads == [(stream.reads[0][0], M * size)]  # one run, one call


def test_pattern_energy_reads_in_bounded_chunks_and_caches(tmp_path):
    path = save(tmp_path, **contract())
    size = N * N * 4
    with CountingStream(path, chunk_bytes=4 * size) as stream:
        assert stream.chunk_patterns == 4
        energy = stream.pattern_energy()
        lengths = [length for _, length in stream.reads]
        assert lengths == [4 * size] * 3  # 12 patterns in three chunks of 4
        stream.reads.clear()
        assert torch.equal(stream.pattern_energy(), energy)
        assert stream.reads == []  # cached
    assert torch.equal(energy, pattern_energy(read_npz(path).diffraction))


@pytest.mark.parametrize("m", [1, 2, 5, 9, 17, 33])
def test_energy_equals_pattern_energy_with_two_threads(tmp_path, m):
    """With N * N above torch's grain size, a one-pattern block is summed by two threads in
    another order: the stream's blocks must keep one-pattern blocks where pattern_energy has
    them, and only there."""
    n = 256
    rng = np.random.default_rng(m)
    arrays = contract(diffraction=(rng.random((m, n, n)) * 1e3).astype(np.float32),
                      xcoords=np.arange(m) * 1.0, ycoords=np.zeros(m),
                      probeGuess=np.ones((n, n), np.complex64), objectGuess=None,
                      xcoords_start=None, ycoords_start=None, scan_index=None)
    path = save(tmp_path, **arrays)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with open_scan_stream(path, chunk_bytes=2 * n * n * 4) as stream:
            assert stream.chunk_patterns == 2
            energy = stream.pattern_energy()
        expected = pattern_energy(torch.from_numpy(arrays["diffraction"]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(energy, expected)


@given(m=st.integers(1, 3 * ENERGY_CHUNK + 5), exponent=st.integers(1, 12))
def test_energy_blocks_refine_pattern_energys_blocks(m, exponent):
    per = 2**exponent
    blocks = energy_blocks(m, per)
    assert blocks[0][0] == 0 and blocks[-1][1] == m
    assert all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert all(1 <= hi - lo <= per + 1 for lo, hi in blocks)
    # never across one of pattern_energy's block boundaries
    assert all(lo // ENERGY_CHUNK == (hi - 1) // ENERGY_CHUNK for lo, hi in blocks)
    singles = {lo for lo, hi in blocks if hi - lo == 1}
    reference = {lo for lo in range(0, m, ENERGY_CHUNK) if min(lo + ENERGY_CHUNK, m) - lo == 1}
    assert singles == reference


def test_energy_chunk_patterns():
    assert energy_chunk_patterns(64, 16 << 20) == 1024
    assert energy_chunk_patterns(8, 1 << 40) == ENERGY_CHUNK
    assert energy_chunk_patterns(4096, 1) == 2
    assert ENERGY_CHUNK % energy_chunk_patterns(100, 3 << 20) == 0


def test_read_indices_are_checked(tmp_path):
    with open_scan_stream(save(tmp_path, **contract())) as stream:
        for bad in ([M], [-1], [0, M + 3]):
            with pytest.raises(DataError, match="outside"):
                stream.read(torch.tensor(bad))
        assert stream.read(torch.zeros(0, dtype=torch.int64)).shape == (0, N, N)
        assert stream.read(torch.zeros(0, dtype=torch.int64)).dtype == torch.float32
        with pytest.raises(DataError, match="non-integer"):
            stream.read(torch.tensor([0.5]))


def test_closed_stream_refuses_to_read(tmp_path):
    stream = open_scan_stream(save(tmp_path, **contract()))
    with stream:
        assert not stream.closed and "open" in repr(stream)
    assert stream.closed and "closed" in repr(stream)
    with pytest.raises(DataError, match="closed"):
        stream.read(torch.tensor([0]))


# ------------------------------------------------------------------ bad values and files


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("value, words", [(np.nan, "NaN or infinite"),
                                          (np.inf, "NaN or infinite"),
                                          (-0.25, "negative")])
def test_bad_values_name_file_key_and_pattern(tmp_path, compress, value, words):
    diffraction = contract()["diffraction"]
    diffraction[7, 2, 3] = value
    path = save(tmp_path, "bad.npz", compress=compress, **contract(diffraction=diffraction))
    with pytest.raises(DataError, match=words):
        read_npz(path)
    with open_scan_stream(path) as stream:  # the small arrays are fine: it opens
        assert stream.read(torch.tensor([0, 6, 8])).shape == (3, N, N)
        pattern = rf"bad\.npz: 'diffraction' holds {words}.*pattern 7 .*pixel \(2, 3\)"
        with pytest.raises(DataError, match=pattern):
            stream.read(torch.tensor([1, 7]))
        with pytest.raises(DataError, match=pattern):
            stream.pattern_energy()
        with pytest.raises(DataError, match=pattern):
            stream.read(torch.tensor([7, 7, 7]))


def test_negative_counts_are_refused_before_the_root(tmp_path):
    diffraction = contract()["diffraction"]
    diffraction[4, 0, 0] = -1
    path = save(tmp_path, **contract(diffraction=diffraction))
    with open_scan_stream(path, values="counts") as stream, pytest.raises(
            DataError, match="negative.*pattern 4"):
        stream.read(torch.arange(M))


def nnm_error(shape):
    return rf"legacy layout \(N, N, M\) = \({shape}\).*write_npz"


def test_legacy_nnm_layout_is_refused_with_advice(tmp_path):
    arrays = contract()
    path = save(tmp_path, **{**arrays, "diffraction": arrays["diffraction"].transpose(1, 2, 0)})
    assert read_npz(path).n_scans == M  # in memory it is fine
    with pytest.raises(DataError, match=nnm_error(f"{N}, {N}, {M}")):
        open_scan_stream(path)
    with pytest.raises(DataError, match="legacy layout"):
        open_scan_stream(save(tmp_path, "mnn.npz", **arrays), layout="NNM")


def test_fortran_order_is_refused_with_advice(tmp_path):
    arrays = contract()
    path = save(tmp_path, **{**arrays, "diffraction": np.asfortranarray(arrays["diffraction"])})
    assert torch.equal(read_npz(path).diffraction, torch.from_numpy(arrays["diffraction"]))
    with pytest.raises(DataError, match="Fortran.*write_npz"):
        open_scan_stream(path)


def npy_bytes(shape, dtype="<f4", payload=b""):
    """A version 1.0 ``.npy`` member whose header claims ``shape`` but holds ``payload``."""
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
            + payload)


def replace_member(source, target, name, data, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            out.writestr(zipfile.ZipInfo(info.filename, info.date_time),
                         data if info.filename == name else src.read(info), compression)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_truncated_diffraction_member_is_refused(tmp_path, compression):
    full = contract()["diffraction"]
    payload = full.tobytes()[: -N * N * 4 - 7]  # the last pattern and a bit are missing
    path = save(tmp_path, "ok.npz", **contract())
    replace_member(path, tmp_path / "cut.npz", "diffraction.npy",
                   npy_bytes((M, N, N), payload=payload), compression)
    with pytest.raises(DataError, match=r"cut\.npz.*'diffraction'.*truncated.*claims"):
        open_scan_stream(tmp_path / "cut.npz")
    with pytest.raises(DataError, match="cut.npz"):
        read_npz(tmp_path / "cut.npz")


def test_file_truncated_after_opening_is_a_data_error(tmp_path):
    path = save(tmp_path, **contract())
    with open_scan_stream(path) as stream:
        start = stream.read(torch.arange(M))
        with open(path, "r+b") as handle:  # cut in the middle of the patterns
            handle.truncate(stream._offset + M // 2 * N * N * 4)
        assert torch.equal(stream.read(torch.tensor([0])), start[:1])
        with pytest.raises(DataError, match="truncated"):
            stream.read(torch.tensor([M - 1]))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file_is_refused(tmp_path, keep):
    path = save(tmp_path, **contract())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="scan.npz"):
        open_scan_stream(path)


def test_corrupt_deflated_member_fails_its_crc(tmp_path):
    path = save(tmp_path, "z.npz", compress=True,
                **contract(diffraction=np.zeros((M, N, N), np.float32)))
    data = bytearray(path.read_bytes())
    start = data.index(b"diffraction.npy") + 40
    data[start:start + 20] = b"\xff" * 20
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="z.npz"):
        open_scan_stream(path)


@pytest.mark.parametrize("patch", [{"method": 99}, {"flags": 0x1}, {"flags": 0x20}],
                         ids=["unknown compression", "encrypted", "patched data"])
def test_zip_features_that_cannot_be_read_are_data_errors(tmp_path, patch):
    path = save(tmp_path, **contract())
    patch_zip_headers(path, "diffraction.npy", **patch)
    with pytest.raises(DataError, match="scan.npz"):
        open_scan_stream(path)


@pytest.mark.parametrize("overrides", [
    {"xcoords": None},
    {"probeGuess": None},
    {"diffraction": None},
    {"probeGuess": np.ones((N + 2, N), np.complex64)},
    {"probeGuess": np.full((N, N), np.nan, np.complex64)},
    {"diffraction": np.zeros((M - 1, N, N), np.float32)},
    {"diffraction": np.zeros((M, N, N + 1), np.float32)},
    {"diffraction": np.zeros((M, N), np.float32)},
    {"diffraction": np.zeros((0, N, N), np.float32)},
    {"diffraction": np.zeros((M, N, N), np.complex64)},
    {"diffraction": np.zeros((M, N, N), bool)},
    {"diffraction": np.array(["a"] * M)},
    {"xcoords": np.zeros(M), "ycoords": np.zeros(M)},
    {"xcoords": np.full(M, 61.0)},
    {"objectGuess": np.ones((4, 4), np.complex64)},
    {"scan_index": np.zeros(M + 1)},
    {"scan_index": np.full(M, 0.5)},
    {"amplitude_from_counts": np.array([1, 2])},
    {"xcoords_start": None},
], ids=lambda o: ",".join(f"{k}" + ("" if v is None else f"{getattr(v, 'shape', '')}")
                          for k, v in o.items()))
def test_broken_files_give_read_npzs_message(tmp_path, overrides):
    assert same_outcome(save(tmp_path, **contract(**overrides))) is None


def test_pickled_diffraction_is_refused(tmp_path):
    arrays = contract(diffraction=np.array([None] * M, dtype=object))
    path = tmp_path / "p.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="pickled"):
        open_scan_stream(path)


def test_missing_file_and_not_a_zip(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        open_scan_stream(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        open_scan_stream(tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(DataError, match="single .npy array"):
        open_scan_stream(tmp_path / "one.npy")


@pytest.mark.parametrize("option, value", [("values", "photons"), ("zero_frequency", "middle"),
                                           ("positions", "left"), ("layout", "NMN"),
                                           ("chunk_bytes", 0)])
def test_bad_options_are_config_errors(tmp_path, option, value):
    with pytest.raises(ConfigError, match=option):
        open_scan_stream(save(tmp_path, **contract()), **{option: value})


# ------------------------------------------------------------------------- load_scan


def test_load_scan_streams_contract_files(tmp_path):
    path = save(tmp_path, **contract())
    stream = load_scan(path, stream=True, zero_frequency="corner")
    try:
        assert isinstance(stream, NpzScanStream)
        assert_same(stream, load_scan(path, zero_frequency="corner"))
    finally:
        stream.close()


def test_load_scan_stream_with_a_probe_file(tmp_path):
    path = save(tmp_path, **contract())
    probe = np.full((N, N), 2 + 1j, np.complex64)
    np.savez(tmp_path / "probe.npz", probe=probe)
    with load_scan(path, stream=True, probe_path=tmp_path / "probe.npz") as stream:
        assert torch.equal(stream.probe, torch.from_numpy(probe))
    modes = np.stack([probe, 0.5 * probe, 0.1j * probe])
    np.savez(tmp_path / "modes.npz", probe_modes=modes, probe=probe)
    with load_scan(path, stream=True, probe_path=tmp_path / "modes.npz") as stream:
        assert torch.equal(stream.probe, torch.from_numpy(modes))  # every mode
    np.savez(tmp_path / "big.npz", probe=np.ones((N + 2, N + 2), np.complex64))
    with pytest.raises(DataError, match="probe"):
        load_scan(path, stream=True, probe_path=tmp_path / "big.npz")
    np.savez(tmp_path / "big_modes.npz", probe_modes=np.ones((2, N + 2, N + 2), np.complex64))
    with pytest.raises(DataError, match=r"probe in big_modes.npz is \(2, 10, 10\)"):
        load_scan(path, stream=True, probe_path=tmp_path / "big_modes.npz")


def test_load_scan_stream_refuses_cropping(tmp_path):
    with pytest.raises(ConfigError, match="stream"):
        load_scan(save(tmp_path, **contract()), stream=True, crop_px=4)


def test_load_scan_stream_reads_tike_files_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"data": rng.poisson(5.0, size=(1, M, N, N)).astype(np.float32),
                  "probe": np.ones((1, 1, 1, 1, N, N), np.complex64),
                  "scan": rng.uniform(-5, 5, size=(1, M, 2)).astype(np.float32)}
    path = tmp_path / "tike.npz"
    np.savez(path, **arrays)
    scan = load_scan(path, stream=True)
    assert isinstance(scan, ScanData) and isinstance(scan, ScanSource)
    assert torch.equal(scan.diffraction, load_scan(path).diffraction)


# ------------------------------------------------------------ ScanData as a ScanSource


def test_scan_data_is_a_scan_source(tmp_path):
    scan = read_npz(save(tmp_path, **contract()))
    assert isinstance(scan, ScanSource)
    with open_scan_stream(save(tmp_path, "b.npz", **contract())) as stream:
        assert isinstance(stream, ScanSource)
    index = torch.tensor([3, 0, 3, 11])
    assert torch.equal(scan.read(index), scan.diffraction[index])
    assert scan.read(index).dtype == torch.float32
    assert torch.equal(scan.pattern_energy(), pattern_energy(scan.diffraction))
    for bad in ([M], [-1]):
        with pytest.raises(DataError, match="outside"):
            scan.read(torch.tensor(bad))


# ------------------------------------------------------------------ normalisation


def test_normalization_from_energy_is_normalization_factor():
    g = torch.Generator().manual_seed(5)
    d = torch.rand(20, 16, 16, generator=g) * 7
    for indices in (torch.arange(20)[:, None], torch.tensor([[0, 3, 3, 19], [5, 5, 5, 5]])):
        factor = normalization_from_energy(pattern_energy(d), indices, 16)
        assert factor == normalization_factor(d, indices)
        assert float(np.float32(factor)) == factor
        x = d.numpy()[indices.numpy().flatten()].astype(np.float64)
        assert factor == float(np.float32(np.sqrt(64 / np.mean(np.sum(x**2, axis=(1, 2))))))


@pytest.mark.parametrize("energy, indices, words", [
    (torch.zeros(3, dtype=torch.float64), torch.tensor([[0, 1]]), "zero"),
    (torch.ones(3, dtype=torch.float64), torch.tensor([[0, 3]]), "indices"),
    (torch.ones(3, dtype=torch.float64), torch.tensor([[-1]]), "indices"),
    (torch.ones(3, dtype=torch.float64), torch.zeros(0, 1, dtype=torch.int64), "indices"),
    (torch.ones(3, 2, dtype=torch.float64), torch.tensor([[0]]), "energy"),
    (torch.ones(3, dtype=torch.complex64), torch.tensor([[0]]), "energy"),
])
def test_normalization_from_energy_errors(energy, indices, words):
    with pytest.raises(DataError, match=words):
        normalization_from_energy(energy, indices, 16)
