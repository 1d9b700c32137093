"""Tests of pinn.plotting: the PNG encoder against a minimal decoder written here, colour
maps, the figure layout (image, masked pixels white, colour bar) and line plots."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from pinn.plotting import (CURVE_COLOURS, colormap, encode_png, figure, plot_curves, save_curves,
                           save_image, save_side_by_side)


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB, non-interlaced PNG whose rows all use filter 0 (what pinn writes),
    checking the signature, every chunk's CRC and the chunk order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride)
    assert (rows[:, 0] == 0).all()  # filter type 0 (None) on every row
    return rows[:, 1:].reshape(height, width, 3)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 3), (2, 300)])
def test_encode_png_round_trip(shape):
    rgb = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    decoded = decode_png(encode_png(rgb))
    assert decoded.shape == rgb.shape
    np.testing.assert_array_equal(decoded, rgb)


def test_encode_png_accepts_non_contiguous_arrays():
    rgb = np.random.default_rng(1).integers(0, 256, (9, 6, 3), dtype=np.uint8)
    view = rgb.transpose(1, 0, 2)[::-1]
    np.testing.assert_array_equal(decode_png(encode_png(view)), view)


@pytest.mark.parametrize("bad", [
    np.zeros((4, 5), np.uint8), np.zeros((4, 5, 4), np.uint8), np.zeros((0, 5, 3), np.uint8),
    np.full((2, 2, 3), 0.5), np.full((2, 2, 3), 300)])
def test_encode_png_refuses_what_it_cannot_write(bad):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_png(bad)


def test_colormap_ends_and_clipping():
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    gray = colormap(values, "gray")
    assert gray.dtype == np.uint8 and gray.shape == (5, 3)
    np.testing.assert_array_equal(gray[:, 0], [0, 0, 128, 255, 255])
    twilight = colormap(np.array([0.0, 1.0]), "twilight")
    np.testing.assert_array_equal(twilight[0], twilight[1])  # a cyclic map for phase
    with pytest.raises(ValueError, match="unknown colour map 'jet'"):
        colormap(values, "jet")


PAD, TITLE_H, BAR_W, LABEL_W = 10, 30, 20, 110  # the figure's layout constants


def image_region(fig, h, w):
    return fig[TITLE_H + PAD:TITLE_H + PAD + h, PAD:PAD + w]


def test_figure_shape_and_upscaling():
    fig = figure(np.zeros((32, 40)))
    zoom = 256 // 40 + 1  # ceil(256 / 40) = 7
    h, w = 32 * zoom, 40 * zoom
    assert fig.shape == (h + TITLE_H + 2 * PAD, w + 3 * PAD + BAR_W + LABEL_W, 3)
    assert fig.dtype == np.uint8
    big = figure(np.zeros((300, 200)))  # no upscaling beyond 256 px
    assert big.shape == (300 + TITLE_H + 2 * PAD, 200 + 3 * PAD + BAR_W + LABEL_W, 3)


def test_figure_pixels_masked_white_and_limits_from_unmasked():
    image = np.tile(np.linspace(0.0, 1.0, 16), (16, 1))  # columns 0..1
    image[3, 4] = 50.0  # an outlier, masked out: must not set the colour limits
    mask = np.ones((16, 16), bool)
    mask[3, 4] = False
    mask[10, 12] = False
    fig = figure(image, mask=mask, cmap="gray")
    zoom = 16  # ceil(256 / 16)
    region = image_region(fig, 16 * zoom, 16 * zoom)
    block = lambda y, x: region[y * zoom:(y + 1) * zoom, x * zoom:(x + 1) * zoom]  # noqa: E731
    assert (block(3, 4) == 255).all() and (block(10, 12) == 255).all()
    assert (block(0, 0) == 0).all()  # the minimum is black
    assert (block(0, 15) == 255).all()  # the unmasked maximum is white, not the outlier
    middle = block(5, 8)[0, 0]
    assert 120 <= middle[0] <= 140 and middle[0] == middle[1] == middle[2]


def test_figure_colour_bar_runs_from_top_to_bottom():
    fig = figure(np.random.default_rng(0).random((64, 64)), cmap="gray")
    h = w = 256
    bar = fig[TITLE_H + PAD:TITLE_H + PAD + h, 2 * PAD + w:2 * PAD + w + BAR_W, 0]
    assert bar[0].min() == 255 and bar[-1].max() == 0  # maximum on top
    assert (np.diff(bar[:, 0].astype(int)) <= 0).all()


def test_figure_nan_pixels_and_constant_images():
    image = np.ones((8, 8))
    image[2, 2] = np.nan
    fig = figure(image, cmap="gray")
    region = image_region(fig, 256, 256)
    assert (region[2 * 32:3 * 32, 2 * 32:3 * 32] == 255).all()
    assert figure(np.full((4, 4), np.nan)).shape[2] == 3  # nothing valid: still a figure


def test_figure_draws_labels_and_title():
    blank = figure(np.zeros((16, 16)), cmap="gray")
    titled = figure(np.zeros((16, 16)), title="phase (rad)", cmap="gray")
    assert (blank[:TITLE_H] == 255).all()
    assert (titled[:TITLE_H] == 0).any()  # black title glyphs
    labels = blank[:, -LABEL_W:]
    assert (labels == 0).any()  # the colour bar's numbers


@pytest.mark.parametrize("bad, match", [
    (np.zeros(5), r"\(H, W\) image"), (np.zeros((0, 4)), r"\(H, W\) image")])
def test_figure_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        figure(bad)
    with pytest.raises(ValueError, match="mask has shape"):
        figure(np.zeros((4, 4)), mask=np.ones((4, 5), bool))


def test_save_image_and_side_by_side(tmp_path):
    image = np.random.default_rng(0).random((20, 30))
    path = save_image(tmp_path / "a.png", image, title="amplitude", cmap="viridis")
    np.testing.assert_array_equal(decode_png(path.read_bytes()),
                                  figure(image, title="amplitude", cmap="viridis"))
    tall = np.random.default_rng(1).random((40, 10))
    both = save_side_by_side(tmp_path / "b.png", [image, tall], ["a", "b"])
    decoded = decode_png(both.read_bytes())
    first, second = figure(image, None, "a"), figure(tall, None, "b")
    assert decoded.shape == (max(first.shape[0], second.shape[0]),
                             first.shape[1] + second.shape[1], 3)
    np.testing.assert_array_equal(decoded[:first.shape[0], :first.shape[1]], first)
    np.testing.assert_array_equal(decoded[first.shape[0]:, :first.shape[1]], 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


# ------------------------------------------------------------------------------ line plots

PLOT_TOP = 48  # rows above hold the title and the legend (drawn in the curves' colours too)


def drawn(image, colour):
    """Rows and columns of the pixels of ``colour`` below the legend."""
    rows, cols = np.nonzero(np.all(image[PLOT_TOP:] == colour, axis=-1))
    return rows + PLOT_TOP, cols


def test_a_straight_line_is_drawn_from_bottom_left_to_top_right():
    x = np.arange(11.0)
    image = plot_curves({"a": (x, 2 * x + 1)}, title="t", xlabel="epoch")
    rows, cols = drawn(image, CURVE_COLOURS[0])
    assert cols.max() - cols.min() > 300 and rows.max() - rows.min() > 150
    slope, intercept = np.polyfit(cols, rows, 1)
    assert slope < 0  # rising values go up the image
    assert np.abs(rows - (slope * cols + intercept)).max() <= 2.5  # one straight stroke


def test_each_curve_has_its_colour_and_a_gap_where_values_are_missing():
    x = np.arange(20.0)
    broken = np.where((x >= 8) & (x <= 11), np.nan, 5.0 + x)
    image = plot_curves({"first": (x, 30 - x), "second": (x, broken)})
    first_cols = drawn(image, CURVE_COLOURS[0])[1]
    second_cols = drawn(image, CURVE_COLOURS[1])[1]
    assert first_cols.size > 300 and second_cols.size > 200
    present = np.unique(second_cols)
    gaps = np.diff(present)
    assert gaps.max() > 40  # no line across the four missing epochs
    assert len(np.unique(first_cols)) > len(present)


def test_eight_curves_get_eight_distinct_colours():
    """The time-to-quality benchmark draws six curves (3 generators x 2 outputs) per plot."""
    assert len(set(CURVE_COLOURS)) == len(CURVE_COLOURS) == 8
    x = np.arange(10.0)
    image = plot_curves({str(k): (x, x + 20 * k) for k in range(8)})
    assert all(drawn(image, colour)[0].size > 50 for colour in CURVE_COLOURS)


def test_log_axis_makes_a_geometric_series_straight():
    x = np.arange(5.0)
    image = plot_curves({"a": (x, 10.0 ** x)}, log_y=True)
    rows, cols = drawn(image, CURVE_COLOURS[0])
    slope, intercept = np.polyfit(cols, rows, 1)
    assert np.abs(rows - (slope * cols + intercept)).max() <= 2.5
    flat = plot_curves({"a": (x, 10.0 ** x)}, log_y=False)
    rows, cols = drawn(flat, CURVE_COLOURS[0])
    slope, intercept = np.polyfit(cols, rows, 1)
    assert np.abs(rows - (slope * cols + intercept)).max() > 20  # bent on a linear axis


def test_a_lone_point_is_a_dot_and_labels_are_drawn():
    image = plot_curves({"a": ([1.0], [2.5])}, title="one point", xlabel="epoch")
    rows, cols = drawn(image, CURVE_COLOURS[0])
    assert rows.size == 25  # a 5 x 5 dot
    assert (image[:20] == 0).any()  # the black title
    assert (image[PLOT_TOP:, :80] == 0).any()  # the y tick label


@pytest.mark.parametrize("curves, match", [
    ({}, "1 to 8 curves"),
    ({str(k): ([0], [0]) for k in range(9)}, "1 to 8 curves"),
    ({"a": ([0, 1], [0])}, "x has 2 points, y 1"),
    ({"a": ([0, 1], [np.nan, np.inf])}, "no finite point"),
])
def test_plot_curves_errors(curves, match):
    with pytest.raises(ValueError, match=match):
        plot_curves(curves)


def test_save_curves(tmp_path):
    curves = {"a": (np.arange(4.0), np.arange(4.0) ** 2)}
    path = save_curves(tmp_path / "c.png", curves, title="t")
    np.testing.assert_array_equal(decode_png(path.read_bytes()), plot_curves(curves, title="t"))
