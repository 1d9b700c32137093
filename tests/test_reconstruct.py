"""Tests of pinn.reconstruct: stitching geometry (with an oracle model that returns the true
object), every position used, batch-size independence, crop/flip/transpose options, errors,
and the files save_reconstruction writes."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pinn import ops
from pinn.config import ModelConfig
from pinn.data import (
    NpzScanStream,
    make_positions,
    make_probe,
    open_scan_stream,
    read_npz,
    simulate,
    simulate_scan,
    write_npz,
)
from pinn.errors import ConfigError, DataError
from pinn.evaluate import evaluate
from pinn.model import build_model
from pinn.plotting import figure
from pinn.reconstruct import reconstruct, save_reconstruction

N = 64
#: the grouping a bare model at gridsize > 1 needs (an archive records its own)
GROUPING = {"neighbors": 4, "seed": 0}


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_field(shape, sigma, rng):
    """Periodic Gaussian-filtered white noise, zero mean, unit standard deviation."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    gain = np.exp(-2 * np.pi**2 * sigma**2 * (ky**2 + kx**2))
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * gain).real
    return (field - field.mean()) / field.std()


@pytest.fixture(scope="module")
def scan():
    """30 random positions over a smooth 96 x 96 complex object (features of a few pixels, so
    that the half-pixel blur of bilinear sampling and placement stays below SSIM 0.99)."""
    rng = np.random.default_rng(0)
    obj = (0.7 + 0.15 * smooth_field((96, 96), 2, rng)) * np.exp(
        0.5j * smooth_field((96, 96), 2, rng))
    positions = make_positions("random", (96, 96), N, 30, seed=0)
    return simulate_scan(torch.from_numpy(obj), make_probe("default", N), positions, 1e5,
                         seed=0)


class Oracle(nn.Module):
    """Stands in for a trained model: identifies each input pattern among the scan's patterns,
    recovers the group centroid from the member's true position and its offset, and returns
    the true object window (N x N, centre pixel on the centroid) for every group.

    ``value`` replaces the object by a function of the centroid (constant patches), and
    ``transpose`` returns each window transposed.
    """

    def __init__(self, scan, gridsize=1, intensity_scale=3.5, value=None, transpose=False):
        super().__init__()
        self.size = scan.N
        self.config = ModelConfig(size_px=scan.N, gridsize=gridsize, projection_passes=0)
        self.register_buffer("intensity_scale", torch.tensor(float(intensity_scale)))
        flat = scan.diffraction.reshape(scan.n_scans, -1).double()
        self.patterns = flat / flat.norm(dim=1, keepdim=True)
        self.positions = scan.positions
        self.truth = scan.object.to(torch.complex128)
        self.value, self.transpose = value, transpose
        self.calls = []  # (member indices (B, C), centroid spread) per call
        self.steps = []  # the projection steps asked for, per call
        self.blurs = []  # the blur before them, per call
        # the illumination weights of a real model with this scan's probe
        self.lit = build_model(self.config, probe=scan.probe)

    def illumination(self, offsets):
        return self.lit.illumination(offsets)

    def forward(self, amplitude, offsets, steps=0, blur_px=None):
        self.steps.append(steps)
        self.blurs.append(blur_px)
        b, c = amplitude.shape[:2]
        flat = amplitude.reshape(b * c, -1).double()
        flat = flat / flat.norm(dim=1, keepdim=True)
        members = (flat @ self.patterns.T).argmax(dim=1).reshape(b, c)  # (B, C)
        centroids = self.positions[members] - offsets.double()  # (B, C, 2), all C agree
        spread = float((centroids - centroids.mean(dim=1, keepdim=True)).abs().max())
        self.calls.append((members, spread))
        centroid = centroids.mean(dim=1)  # (B, 2)
        if self.value is not None:
            obj = self.value(centroid)[:, None, None].expand(b, self.size, self.size)
        else:
            obj = ops.extract_patches(self.truth, centroid, self.size)  # (B, N, N)
            if self.transpose:
                obj = obj.transpose(-2, -1)
        return SimpleNamespace(object=obj.to(torch.complex64))


def label(centroid):
    """A smooth complex value per group centroid."""
    return torch.complex(1 + 0.01 * centroid[:, 0], 0.02 * centroid[:, 1])


# ------------------------------------------------------------------------- stitching geometry


@pytest.mark.parametrize("gridsize", [1, 2])
def test_oracle_reproduces_the_object(scan, gridsize):
    oracle = Oracle(scan, gridsize=gridsize)
    result = reconstruct(oracle, scan, progress=False, batch_size=16, **GROUPING)
    # the oracle saw consistent offsets: every member of a group points to the same centroid
    assert max(spread for _, spread in oracle.calls) < 1e-4
    assert result.n_positions == scan.n_scans == 30
    assert result.n_groups == 30
    seen = torch.cat([m.flatten() for m, _ in oracle.calls]).unique()
    assert seen.tolist() == list(range(scan.n_scans))  # every position went in

    metrics = evaluate(result, scan.object)
    assert metrics["amplitude_ssim"] > 0.98, metrics
    assert metrics["phase_ssim"] > 0.98, metrics
    # the canvas sits on the object's pixel grid: no registration shift is needed
    assert abs(metrics["shift_y_px"]) < 0.1 and abs(metrics["shift_x_px"]) < 0.1
    unregistered = evaluate(result, scan.object, register=False)
    assert unregistered["amplitude_ssim"] > 0.98, unregistered


def test_oracle_at_integer_positions_is_exact():
    """At integer positions sampling and placement are exact: the stitched grf object equals
    the truth on every covered pixel, so the frame is right to the pixel."""
    grf = simulate("grf", n_scans=30, size=N, object_size=96, photons=1e5, seed=0)
    grf = simulate_scan(grf.object, grf.probe, grf.positions.round(), 1e5, seed=0)
    result = reconstruct(Oracle(grf), grf, progress=False, weighting="uniform")
    truth = result.object_window(grf.object)
    covered = result.coverage > 0.5
    torch.testing.assert_close(result.object[covered], truth[covered], rtol=0, atol=1e-5)
    assert not torch.allclose(result.object[covered], truth.roll(1, -1)[covered], atol=1e-2)
    metrics = evaluate(result, grf.object)
    assert metrics["amplitude_ssim"] > 0.9999 and metrics["phase_ssim"] > 0.9999, metrics
    assert metrics["shift_y_px"] == 0 and metrics["shift_x_px"] == 0


def test_every_scan_position_is_covered(scan):
    result = reconstruct(Oracle(scan, gridsize=2), scan, progress=False, **GROUPING)
    oy, ox = result.origin_px
    canvas = scan.positions - torch.tensor([oy, ox], dtype=torch.float64)
    iy, ix = canvas.round().long().unbind(1)
    assert bool((result.coverage[iy, ix] > 0).all())
    assert result.n_positions == scan.n_scans


@pytest.mark.parametrize("crop_px", [1, 17, 32, 64])
def test_crop_px_sets_the_stitched_window(scan, crop_px):
    result = reconstruct(Oracle(scan), scan, crop_px=crop_px, weighting="uniform",
                         progress=False)
    assert result.crop_px == crop_px
    # every window landed entirely on the canvas: total coverage = groups x window area
    assert float(result.coverage.sum()) == pytest.approx(30 * crop_px**2, rel=1e-5)
    assert float(result.coverage.max()) <= 30
    if crop_px >= 17:
        assert evaluate(result, scan.object)["amplitude_ssim"] > 0.98


def test_default_crop_depends_on_the_weighting(scan):
    """Probe weighting stitches whole patches; uniform weighting the reference's 5N/16 window
    (20 px at N = 64), because the object is unconstrained where the probe is dark."""
    assert reconstruct(Oracle(scan), scan, progress=False).crop_px == N
    assert reconstruct(Oracle(scan), scan, weighting="uniform",
                       progress=False).crop_px == 5 * N // 16


def test_probe_weighting_counts_lit_pixels(scan):
    """Coverage sums the illumination |probe|**2 (peak 1): the weight of a pixel falls with
    the probe, and the image is still the oracle's object where the probe is bright."""
    result = reconstruct(Oracle(scan), scan, progress=False)
    iy, ix = scan.positions.round().long().T - torch.tensor(result.origin_px)[:, None]
    at_centres = result.coverage[iy, ix]
    assert bool((at_centres > 0.5).all())
    assert float(result.coverage.max()) <= 30
    assert evaluate(result, scan.object)["amplitude_ssim"] > 0.98


def test_unknown_weighting_is_refused(scan):
    with pytest.raises(ConfigError, match="weighting"):
        reconstruct(Oracle(scan), scan, weighting="gaussian", progress=False)


@pytest.mark.parametrize("crop_px", [0, -3, N + 1])
def test_bad_crop_px_is_refused(scan, crop_px):
    with pytest.raises(ConfigError, match="crop_px"):
        reconstruct(Oracle(scan), scan, crop_px=crop_px, progress=False)


def test_bad_batch_size_is_refused(scan):
    with pytest.raises(ConfigError, match="batch_size"):
        reconstruct(Oracle(scan), scan, batch_size=0, progress=False)


def test_batch_size_does_not_change_the_result(scan):
    torch.manual_seed(1)
    model = build_model(ModelConfig(size_px=N, n_filters_scale=1), probe=scan.probe,
                        intensity_scale=10.0)
    small = scan.select(torch.arange(12))
    results = [reconstruct(model, small, batch_size=b, progress=False) for b in (1, 5, 64)]
    for other in results[1:]:
        assert other.origin_px == results[0].origin_px
        # float weights summed in another order: equal up to rounding
        torch.testing.assert_close(other.coverage, results[0].coverage, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(other.object, results[0].object, rtol=1e-5, atol=1e-6)
    assert float(results[0].object.abs().sum()) > 0


def test_the_network_sees_the_scaled_diffraction(scan):
    """The inputs are the diffraction normalised with the scan's own factor and multiplied by
    the model's intensity scale (what the training dataset feeds)."""
    from pinn.data import group_positions, normalization_factor

    seen = []

    class Recorder(Oracle):
        def forward(self, amplitude, offsets, steps=0, blur_px=None):
            seen.append(amplitude)
            return super().forward(amplitude, offsets, steps, blur_px)

    reconstruct(Recorder(scan, intensity_scale=2.0), scan, progress=False, batch_size=64)
    factor = normalization_factor(scan.diffraction, group_positions(scan.positions, 1).indices)
    torch.testing.assert_close(seen[0][:, 0], scan.diffraction * factor * 2.0, rtol=1e-6,
                               atol=0)


def test_covered_region():
    from pinn.reconstruct import Reconstruction

    coverage = torch.tensor([[0.0, 1.0, 4.0], [4.0, 4.0, 2.0]])
    result = Reconstruction(object=torch.zeros(2, 3, dtype=torch.complex64), coverage=coverage,
                            origin_px=(0, 0), crop_px=1, n_positions=1, n_groups=1)
    assert result.covered().tolist() == [[False, False, True], [True, True, True]]
    assert result.covered(0.1).tolist() == [[False, True, True], [True, True, True]]
    empty = Reconstruction(object=torch.zeros(2, 2, dtype=torch.complex64),
                           coverage=torch.zeros(2, 2), origin_px=(0, 0), crop_px=1,
                           n_positions=1, n_groups=1)
    assert not empty.covered().any()


# ------------------------------------------------------------------- flips and transposition


def test_flip_x_mirrors_the_output_horizontally(scan):
    # constant patches and an odd window are mirror-symmetric, so only placement differs
    model = Oracle(scan, value=label)
    plain = reconstruct(model, scan, crop_px=31, weighting="uniform", progress=False)
    flipped = reconstruct(model, scan, crop_px=31, flip_x=True, weighting="uniform",
                          progress=False)
    assert flipped.object.shape == plain.object.shape
    torch.testing.assert_close(flipped.coverage, plain.coverage.flip(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flipped.object, plain.object.flip(-1), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(plain.object, plain.object.flip(-1), atol=1e-3)


def test_flip_y_mirrors_the_output_vertically(scan):
    model = Oracle(scan, value=label)
    plain = reconstruct(model, scan, crop_px=31, weighting="uniform", progress=False)
    flipped = reconstruct(model, scan, crop_px=31, flip_y=True, weighting="uniform",
                          progress=False)
    torch.testing.assert_close(flipped.coverage, plain.coverage.flip(-2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(flipped.object, plain.object.flip(-2), rtol=1e-4, atol=1e-5)
    both = reconstruct(model, scan, crop_px=31, flip_x=True, flip_y=True,
                       weighting="uniform", progress=False)
    torch.testing.assert_close(both.object, plain.object.flip(-2, -1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flips", [{"flip_x": True}, {"flip_y": True},
                                   {"flip_x": True, "flip_y": True}])
def test_flips_apply_to_precomputed_groups(scan, flips):
    from pinn.data import group_positions

    model = Oracle(scan, gridsize=2, value=label)
    grouped = reconstruct(model, scan, crop_px=31, progress=False,
                          groups=group_positions(scan.positions, 2), **flips)
    default = reconstruct(model, scan, crop_px=31, progress=False, **GROUPING, **flips)
    assert grouped.origin_px == default.origin_px
    torch.testing.assert_close(grouped.object, default.object)


def test_transpose_swaps_the_axes_of_each_patch(scan):
    plain = reconstruct(Oracle(scan), scan, progress=False)
    undone = reconstruct(Oracle(scan, transpose=True), scan, transpose=True, progress=False)
    assert torch.equal(undone.object, plain.object)
    wrong = reconstruct(Oracle(scan, transpose=True), scan, progress=False)
    assert evaluate(wrong, scan.object)["amplitude_ssim"] < 0.9


# ---------------------------------------------------------------------------------- errors


def test_wrong_pattern_size_names_both_sizes():
    small = simulate("grf", n_scans=4, size=32, object_size=48, photons=1e4, seed=0)
    model = build_model(ModelConfig(size_px=64, n_filters_scale=1))
    with pytest.raises(DataError, match=r"32 x 32.*64 x 64"):
        reconstruct(model, small, progress=False)


def test_too_few_positions_for_the_gridsize(scan):
    with pytest.raises(DataError):
        reconstruct(Oracle(scan, gridsize=2), scan.select([0, 1, 2]), progress=False,
                    **GROUPING)


def test_groups_of_another_gridsize_are_refused(scan):
    """Groups must have the model's gridsize**2 members: no silent reinterpretation."""
    from pinn.data import group_positions

    with pytest.raises(ConfigError, match=r"4 members.*gridsize 1 \(1 members\)"):
        reconstruct(Oracle(scan), scan, groups=group_positions(scan.positions, 2),
                    progress=False)
    with pytest.raises(ConfigError, match=r"1 members.*gridsize 2"):
        reconstruct(Oracle(scan, gridsize=2), scan, groups=group_positions(scan.positions, 1),
                    progress=False)


def test_a_bare_model_at_gridsize_2_needs_its_grouping(scan):
    """No default grouping hides behind a bare model: the archive or the caller gives it."""
    for missing in ({}, {"neighbors": 4}, {"seed": 0}):
        with pytest.raises(ConfigError, match="pass neighbors= and seed="):
            reconstruct(Oracle(scan, gridsize=2), scan, progress=False, **missing)


def test_progress_bar_writes_to_stderr_only_when_enabled(scan, capsys):
    reconstruct(Oracle(scan), scan, progress=False)
    assert capsys.readouterr().err == ""
    reconstruct(Oracle(scan), scan, progress=True)
    captured = capsys.readouterr()
    assert "30/30 groups" in captured.err and captured.out == ""


def test_on_batch_reports_progress(scan):
    calls = []
    reconstruct(Oracle(scan), scan, batch_size=8, progress=False,
                on_batch=lambda done, total: calls.append((done, total)))
    assert calls == [(8, 30), (16, 30), (24, 30), (30, 30)]


# ------------------------------------------------------------------------- saved results


def png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR, after checking the signature and the chunk CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert crc == zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF
    width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    assert (depth, colour) == (8, 2)
    assert data.endswith(b"IEND\xaeB`\x82")
    return height, width


def test_save_reconstruction_writes_npz_and_pngs(scan, tmp_path):
    result = reconstruct(Oracle(scan), scan, progress=False)
    paths = save_reconstruction(result, tmp_path / "out")
    assert paths["npz"] == tmp_path / "out" / "reconstruction.npz"
    with np.load(paths["npz"], allow_pickle=False) as data:
        assert sorted(data.files) == sorted(
            ["object", "amplitude", "phase", "coverage", "origin_px", "crop_px"])
        np.testing.assert_array_equal(data["object"], result.object.numpy())
        np.testing.assert_array_equal(data["amplitude"], result.amplitude.numpy())
        np.testing.assert_array_equal(data["phase"], result.phase.numpy())
        np.testing.assert_array_equal(data["coverage"], result.coverage.numpy())
        assert tuple(data["origin_px"].tolist()) == result.origin_px
        assert int(data["crop_px"]) == result.crop_px
        assert data["object"].dtype == np.complex64
    expected = figure(result.amplitude.numpy()).shape[:2]
    for key in ("amplitude", "phase"):
        assert paths[key].name == f"{key}.png"
        assert png_size(paths[key].read_bytes()) == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "amplitude.png", "phase.png", "reconstruction.npz"]


def test_positions_spanning_more_than_memory_are_refused(scan):
    """Positions in nanometres instead of pixels would need a canvas of petabytes."""
    from pinn.data import ScanData

    far = ScanData(diffraction=scan.diffraction, positions=scan.positions * 1e6,
                   probe=scan.probe)
    with pytest.raises(DataError, match="GiB, more than this machine's .* not metres"):
        reconstruct(Oracle(scan), far, progress=False)


# ----------------------------------------------------------------------------- streaming


class ProtocolOnly:
    """Exposes only the ScanSource protocol of a source (no ``diffraction``) and records how
    it is used: the size of every read and the number of energy passes."""

    def __init__(self, source):
        self._source = source
        self.N, self.n_scans = source.N, source.n_scans
        self.positions, self.probe = source.positions, source.probe
        self.read_sizes: list[int] = []
        self.energy_calls = 0

    def read(self, indices):
        self.read_sizes.append(int(indices.numel()))
        return self._source.read(indices)

    def pattern_energy(self):
        self.energy_calls += 1
        return self._source.pattern_energy()


class FileCounting(NpzScanStream):
    """A stream recording the bytes of every read from its file."""

    def __init__(self, *args, **kwargs):
        self.file_reads: list[int] = []
        super().__init__(*args, **kwargs)

    def _read_at(self, view, offset):
        self.file_reads.append(len(view))
        super()._read_at(view, offset)


def untrained(scan, gridsize):
    torch.manual_seed(2)
    return build_model(ModelConfig(size_px=N, gridsize=gridsize, n_filters_scale=1),
                       probe=scan.probe, intensity_scale=10.0)


@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
def test_a_streamed_scan_reconstructs_bit_for_bit(scan, tmp_path, gridsize, compress):
    path = tmp_path / "scan.npz"
    write_npz(path, scan, compress=compress)
    model = untrained(scan, gridsize)
    options = {"batch_size": 7, "progress": False, "flip_x": True, **GROUPING}
    expected = reconstruct(model, read_npz(path), **options)
    with open_scan_stream(path) as stream:
        streamed = reconstruct(model, stream, **options)
    assert streamed.origin_px == expected.origin_px
    assert torch.equal(streamed.object, expected.object)
    assert torch.equal(streamed.coverage, expected.coverage)
    assert float(expected.object.abs().sum()) > 0
    assert (streamed.n_positions, streamed.n_groups) == (expected.n_positions, expected.n_groups)


def test_reconstruct_uses_only_the_protocol_and_reads_in_batches(scan, tmp_path):
    path = tmp_path / "scan.npz"
    write_npz(path, scan)
    pattern = N * N * 4
    model = untrained(scan, 2)
    with FileCounting(path, chunk_bytes=8 * pattern) as stream:
        source = ProtocolOnly(stream)
        result = reconstruct(model, source, batch_size=3, progress=False, projection_passes=0,
                             **GROUPING)
        assert source.energy_calls == 1
        assert max(source.read_sizes) <= 3 * 4  # batch_size groups of gridsize**2 patterns
        assert sum(source.read_sizes) == result.n_groups * 4  # every group read once
        # the file is read in pieces of at most a chunk (8 patterns) or a batch (12), never
        # all 30 patterns at once: one energy pass plus each batch's distinct patterns
        assert max(stream.file_reads) <= 12 * pattern
        assert sum(stream.file_reads) <= (scan.n_scans + result.n_groups * 4) * pattern
    in_memory = reconstruct(model, scan, batch_size=3, progress=False, projection_passes=0,
                            **GROUPING)
    assert torch.equal(result.object, in_memory.object)
    # each pass over the scan reads every pattern once more, a block at a time
    from pinn.reconstruct import PASS_BLOCK

    with FileCounting(path, chunk_bytes=8 * pattern) as stream:
        source = ProtocolOnly(stream)
        result = reconstruct(model, source, batch_size=3, progress=False, projection_passes=2,
                             **GROUPING)
        assert sum(source.read_sizes) == result.n_groups * 4 + 2 * scan.n_scans
        assert max(source.read_sizes) <= max(3 * 4, PASS_BLOCK)
    in_memory = reconstruct(model, scan, batch_size=3, progress=False, projection_passes=2,
                            **GROUPING)
    assert torch.equal(result.object, in_memory.object)


def test_the_normalisation_factor_of_a_stream_is_normalization_factor(scan, tmp_path):
    from pinn.data import group_positions, normalization_factor

    path = tmp_path / "scan.npz"
    write_npz(path, scan)
    seen = []

    class Recorder(Oracle):
        def forward(self, amplitude, offsets, steps=0, blur_px=None):
            seen.append(amplitude)
            return super().forward(amplitude, offsets, steps, blur_px)

    with open_scan_stream(path) as stream:
        reconstruct(Recorder(scan, intensity_scale=2.0), stream, progress=False)
    factor = normalization_factor(scan.diffraction, group_positions(scan.positions, 1).indices)
    assert torch.equal(seen[0][:, 0], scan.diffraction * (factor * 2.0))


def test_cli_stream_option_gives_the_same_reconstruction(scan, tmp_path, capsys):
    from pinn import cli
    from pinn.archive import save_archive

    data = tmp_path / "scan.npz"
    write_npz(data, scan)
    model = save_archive(untrained(scan, 1), tmp_path / "model")
    outputs = {}
    for name, extra in (("memory", []), ("stream", ["--stream"])):
        status = cli.main(["reconstruct", str(model), str(data), "--out", str(tmp_path / name),
                           "--quiet", *extra])
        assert status == 0
        with np.load(tmp_path / name / "reconstruction.npz") as result:
            outputs[name] = result["object"]
    np.testing.assert_array_equal(outputs["stream"], outputs["memory"])
    capsys.readouterr()
    status = cli.main(["reconstruct", str(model), str(data), "--out", str(tmp_path / "x"),
                       "--stream", "--crop-patterns", "32"])
    assert status == 2
    assert "stream" in capsys.readouterr().err


def test_the_cli_and_the_api_group_as_the_archive_records(scan, tmp_path, capsys):
    """An archive records the grouping its model was trained with; ``pinn reconstruct`` and
    ``reconstruct(archive, ...)`` both use it, and explicit options or flags override it."""
    from pinn import cli
    from pinn.archive import load_archive, save_archive
    from pinn.config import Config, DataConfig

    data = tmp_path / "scan.npz"
    write_npz(data, scan)
    scan = read_npz(data)  # what the command reads
    model = untrained(scan, 2)
    path = save_archive(model, tmp_path / "model", config=Config(
        model=model.config, data=DataConfig(neighbors=7, grouping_seed=3)))
    archive = load_archive(path)
    recorded = reconstruct(archive, scan, progress=False)
    explicit = reconstruct(archive.model, scan, neighbors=7, seed=3, progress=False)
    other = reconstruct(archive.model, scan, progress=False, **GROUPING)
    assert torch.equal(recorded.object, explicit.object)
    assert not torch.equal(recorded.object, other.object)  # the grouping matters here
    overridden = reconstruct(archive, scan, progress=False, **GROUPING)
    assert torch.equal(overridden.object, other.object)
    for name, flags, expected in (
            ("recorded", [], recorded),
            ("overridden", ["--neighbors", "4", "--grouping-seed", "0"], other)):
        assert cli.main(["reconstruct", str(path), str(data), "--out", str(tmp_path / name),
                         "--quiet", *flags]) == 0
        with np.load(tmp_path / name / "reconstruction.npz") as result:
            np.testing.assert_array_equal(result["object"], expected.object.numpy())
    capsys.readouterr()


def test_streaming_a_legacy_layout_file_is_refused(scan, tmp_path):
    arrays = {"diffraction": scan.diffraction.permute(1, 2, 0).numpy(),
              "xcoords": scan.positions[:, 1].numpy(), "ycoords": scan.positions[:, 0].numpy(),
              "probeGuess": scan.probe.numpy()}
    np.savez(tmp_path / "legacy.npz", **arrays)
    assert read_npz(tmp_path / "legacy.npz").n_scans == scan.n_scans
    with pytest.raises(DataError, match="legacy layout"):
        open_scan_stream(tmp_path / "legacy.npz")


# ------------------------------------------------------------------------- projection steps


def test_the_models_projection_steps_are_applied_unless_overridden(scan):
    oracle = Oracle(scan)
    oracle.config = ModelConfig(size_px=N, projection_steps=5, projection_blur_px=2.5,
                                projection_passes=0)
    reconstruct(oracle, scan, progress=False, batch_size=16)
    assert (set(oracle.steps), set(oracle.blurs)) == ({5}, {2.5})
    oracle.steps.clear()
    oracle.blurs.clear()
    reconstruct(oracle, scan, progress=False, batch_size=16, projection_steps=0,
                projection_blur_px=1)
    assert (set(oracle.steps), set(oracle.blurs)) == ({0}, {1.0})


@pytest.mark.parametrize("steps", [-1, 1.5, True])
def test_bad_projection_steps_are_refused(scan, steps):
    with pytest.raises(ConfigError, match="projection_steps"):
        reconstruct(Oracle(scan), scan, progress=False, projection_steps=steps)


@pytest.mark.parametrize("blur", [-1.0, float("nan"), "2", True])
def test_bad_projection_blur_is_refused(scan, blur):
    with pytest.raises(ConfigError, match="projection_blur_px"):
        reconstruct(Oracle(scan), scan, progress=False, projection_blur_px=blur)


class Rotating(Oracle):
    """The oracle's true window, each group's times its own constant phase (what projection
    steps leave: the patterns do not fix it)."""

    def forward(self, amplitude, offsets, steps=0, blur_px=None):
        out = super().forward(amplitude, offsets, steps, blur_px)
        gen = torch.Generator().manual_seed(len(self.calls))  # one draw per batch
        phase = (torch.rand(out.object.shape[0], generator=gen) - 0.5) * 3
        return SimpleNamespace(object=out.object * torch.exp(1j * phase)[:, None, None])


def test_phase_synchronisation_repairs_the_groups_constant_phases(scan):
    """Stitched as they are, groups with random constant phases smear the phase; the model's
    synchronisation rounds repair it, and without projection steps none run."""
    oracle = Rotating(scan)
    oracle.config = ModelConfig(size_px=N, projection_steps=4, projection_sync_rounds=60,
                                projection_passes=0)
    options = dict(progress=False, batch_size=8)
    plain = evaluate(reconstruct(oracle, scan, projection_sync_rounds=0, **options),
                     scan.object)
    synced = evaluate(reconstruct(oracle, scan, **options), scan.object)
    assert plain["phase_ssim"] < 0.8 < 0.95 < synced["phase_ssim"], (plain, synced)
    oracle.calls.clear()
    unstepped = reconstruct(oracle, scan, projection_steps=0, **options)
    oracle.calls.clear()
    unsynced = reconstruct(oracle, scan, projection_steps=0, projection_sync_rounds=0,
                           **options)
    assert torch.equal(unstepped.object, unsynced.object)


def test_phase_synchronisation_that_would_not_fit_in_memory_is_skipped_with_a_warning(
        scan, monkeypatch):
    import pinn.reconstruct as module

    oracle = Rotating(scan)
    oracle.config = ModelConfig(size_px=N, projection_steps=4, projection_sync_rounds=10,
                                projection_passes=0)
    expected = reconstruct(oracle, scan, progress=False, projection_sync_rounds=0)
    oracle.calls.clear()
    needed = 30 * N * N * module.SYNC_BYTES_PER_PX  # 30 groups, whole windows
    monkeypatch.setattr(module, "_physical_memory", lambda: 4 * needed - 4)
    with pytest.warns(UserWarning, match="phase synchronisation skipped: the 30 groups"):
        result = reconstruct(oracle, scan, progress=False)
    assert torch.equal(result.object, expected.object)


@pytest.mark.parametrize("rounds", [-1, 2.0, True])
def test_bad_sync_rounds_are_refused(scan, rounds):
    with pytest.raises(ConfigError, match="projection_sync_rounds"):
        reconstruct(Oracle(scan), scan, progress=False, projection_sync_rounds=rounds)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_projection_steps_bring_a_flat_start_closer_to_the_object(scan, gridsize):
    """An untrained network gives a nearly flat object; error-reduction steps against each
    group's own patterns recover much of the truth, and the model's prediction then fits the
    patterns better."""
    from pinn.data import group_positions, normalization_factor

    model = untrained(scan, gridsize)
    options = dict(progress=False, projection_blur_px=0.0, projection_passes=0,
                   **GROUPING)  # the steps alone
    flat = evaluate(reconstruct(model, scan, projection_steps=0, **options), scan.object)
    stepped = evaluate(reconstruct(model, scan, projection_steps=20, **options), scan.object)
    assert stepped["phase_ssim"] > flat["phase_ssim"] + 0.2, (flat, stepped)
    assert stepped["phase_ssim"] > 0.5, stepped
    groups = group_positions(scan.positions, gridsize, **GROUPING)
    amplitude = scan.diffraction[groups.indices[:8]] * 10.0 * normalization_factor(
        scan.diffraction, groups.indices)
    offsets = groups.offsets[:8].float()
    with torch.no_grad():
        misfit = [(model(amplitude, offsets, steps=k, blur_px=0.0).amplitude
                   - amplitude).square().sum()
                  for k in (0, 20)]
    assert misfit[1] < 0.5 * misfit[0]


# ------------------------------------------------------------------------- passes over the scan


def passes_case(count=40, side=120, seed=3):
    """A smooth object on a canvas, ``count`` positions well inside it, the untrained model's
    probe, and the noise-free amplitudes that object gives at those positions (factor 1)."""
    rng = np.random.default_rng(seed)
    field = (0.8 + 0.1 * smooth_field((side, side), 3, rng)) * np.exp(
        0.6j * smooth_field((side, side), 3, rng))
    truth = torch.from_numpy(field).to(torch.complex64)
    positions = torch.from_numpy(rng.uniform(N // 2 + 4, side - N // 2 - 4, (count, 2))
                                 ).to(torch.float32)
    model = build_model(ModelConfig(size_px=N), probe=make_probe("default", N))
    modes = model.probe_modes.detach()
    waves = ops.extract_patches(truth[None], positions[None], N)[0][:, None] * modes
    amplitude = ops.far_field_amplitude(waves)  # (M, N, N)
    source = SimpleNamespace(read=lambda index: amplitude[index])
    return truth, positions, model, source, amplitude


def misfit(canvas, positions, model, amplitude):
    waves = ops.extract_patches(canvas[None], positions[None], N)[0][:, None] * model.probe_modes
    return float((ops.far_field_amplitude(waves) - amplitude).square().sum())


def test_scan_passes_keep_the_object_that_fits_every_pattern():
    from pinn.reconstruct import scan_passes

    truth, positions, model, source, _ = passes_case()
    kept = scan_passes(truth, positions, source, 1.0, model, 3, block=16)
    assert (kept - truth).abs().max() < 1e-4


def test_scan_passes_fit_the_patterns_better_pass_after_pass():
    """From a start whose phase is wrong, every pass lowers the misfit to all the patterns and
    brings the lit object closer to the truth; pixels no probe reaches keep their value; the
    same call gives the same object."""
    from pinn.reconstruct import scan_passes

    truth, positions, model, source, amplitude = passes_case()
    start = truth.abs() * torch.exp(1j * 0.3 * torch.ones_like(truth.real))  # flat phase
    start[:4, :4] = 7.0  # far from every position: no probe reaches it
    lit = ops.reassemble_patches(model.probe_modes.abs().square().sum(0).expand(40, -1, -1)[None],
                                 positions[None], tuple(truth.shape))[0] > 0.05
    misfits, errors, canvas = [], [], start
    for _ in range(4):
        misfits.append(misfit(canvas, positions, model, amplitude))
        phase = torch.angle((canvas * truth.conj())[lit].sum())  # a global phase is free
        errors.append(float((canvas[lit] * torch.exp(-1j * phase) - truth[lit]).abs().mean()))
        canvas = scan_passes(canvas, positions, source, 1.0, model, 1, block=16)
    assert all(b < a for a, b in zip(misfits, misfits[1:])), misfits
    assert misfits[-1] < 0.2 * misfits[0], misfits
    assert errors[-1] < 0.5 * errors[0], errors
    assert torch.equal(canvas[:4, :4], start[:4, :4])
    again = scan_passes(start, positions, source, 1.0, model, 2, block=16)
    assert torch.equal(again, scan_passes(start, positions, source, 1.0, model, 2, block=16))


@pytest.mark.parametrize("gridsize", [1, 2])
def test_reconstruct_ends_with_the_models_passes_over_the_scan(scan, gridsize, capsys):
    """The model's projection_passes run over the stitched object, with the scan's own
    normalisation, and bring the untrained network's flat object much closer to the truth;
    the progress bar shows them."""
    from pinn.data import group_positions
    from pinn.data.normalize import normalization_from_energy
    from pinn.reconstruct import scan_passes

    model = untrained(scan, gridsize)
    assert model.config.projection_passes == 4
    options = dict(projection_steps=0, **GROUPING)
    stitched = reconstruct(model, scan, projection_passes=0, progress=False, **options)
    passed = reconstruct(model, scan, progress=True, **options)
    assert "passes [" in capsys.readouterr().err
    groups = group_positions(scan.positions, gridsize, **GROUPING)
    factor = float(normalization_from_energy(scan.pattern_energy(), groups.indices, N))
    positions = (scan.positions - torch.tensor(stitched.origin_px, dtype=torch.float64)).float()
    expected = scan_passes(stitched.object, positions, scan, factor, model, 4)
    assert torch.equal(passed.object, expected)
    assert torch.equal(passed.coverage, stitched.coverage)
    before, after = evaluate(stitched, scan.object), evaluate(passed, scan.object)
    assert after["phase_ssim"] > before["phase_ssim"] + 0.3, (before, after)


def test_passes_use_only_the_positions_of_the_given_groups(scan):
    """Given a few groups (a training preview), the passes read and fit only their members'
    patterns."""
    from pinn.data import group_positions

    model = untrained(scan, 2)
    groups = group_positions(scan.positions, 2, **GROUPING)
    few = type(groups)(indices=groups.indices[:3], offsets=groups.offsets[:3],
                       centroids=groups.centroids[:3])
    members = torch.unique(few.indices)
    assert len(members) < scan.n_scans
    source = ProtocolOnly(scan)
    rows = []
    read = source.read
    source.read = lambda indices: rows.append(indices.clone()) or read(indices)
    result = reconstruct(model, source, groups=few, progress=False, projection_passes=2)
    assert sum(source.read_sizes) == 3 * 4 + 2 * len(members)
    passes = torch.cat(rows[1:])  # after the one batch of the network's pass
    assert sorted(passes.tolist()) == sorted(2 * members.tolist())
    stitched = reconstruct(model, scan, groups=few, progress=False, projection_passes=0)
    assert not torch.equal(result.object, stitched.object)


@pytest.mark.parametrize("passes", [-1, 2.0, True])
def test_bad_passes_are_refused(scan, passes):
    with pytest.raises(ConfigError, match="projection_passes"):
        reconstruct(Oracle(scan), scan, progress=False, projection_passes=passes)


def test_transpose_makes_no_passes_and_refuses_them_when_asked(scan):
    model = untrained(scan, 1)
    plain = reconstruct(model, scan, progress=False, transpose=True, projection_passes=0)
    assert torch.equal(reconstruct(model, scan, progress=False, transpose=True).object,
                       plain.object)
    with pytest.raises(ConfigError, match="projection_passes needs the patterns' own frame"):
        reconstruct(model, scan, progress=False, transpose=True, projection_passes=2)
