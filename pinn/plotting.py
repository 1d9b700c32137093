"""PNG figures without a plotting library: an image with a colour bar, or a line plot.

pinn depends only on torch, numpy, safetensors and tensorboard, so this module carries a small
PNG encoder (zlib + CRC chunks), colour maps defined by a few anchor colours, lines drawn by
sampling each segment at pixel spacing, and a 5x7 bitmap font for numbers, legends and titles.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from pinn.atomic import atomic_write_bytes

# Anchor colours (position in [0, 1], RGB in [0, 1]) interpolated linearly.
_CMAPS = {
    "gray": [(0.0, (0.0, 0.0, 0.0)), (1.0, (1.0, 1.0, 1.0))],
    # a perceptually ordered blue-green-yellow map
    "viridis": [(0.0, (0.27, 0.00, 0.33)), (0.25, (0.23, 0.32, 0.55)),
                (0.5, (0.13, 0.57, 0.55)), (0.75, (0.37, 0.79, 0.38)),
                (1.0, (0.99, 0.91, 0.14))],
    # a cyclic map for phase: the two ends meet in the same colour
    "twilight": [(0.0, (0.88, 0.85, 0.89)), (0.25, (0.37, 0.47, 0.76)),
                 (0.5, (0.19, 0.07, 0.23)), (0.75, (0.70, 0.30, 0.27)),
                 (1.0, (0.88, 0.85, 0.89))],
}

# 5x7 glyphs, one string of 7 rows of 5 bits each.
_FONT = {
    "0": "01110100011001110101110011000101110", "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111", "3": "11111000100010000010000011000101110",
    "4": "00010001100101010010111110001000010", "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110", "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110", "9": "01110100011000101111000010001001100",
    ".": "00000000000000000000000000110001100", "-": "00000000000000011111000000000000000",
    "+": "00000001000010011111001000010000000", "e": "00000000000111010001111111000001110",
    " ": "0" * 35, "(": "00010001000100001000010000010000010", ")": "01000001000001000010000100010001000",
    "a": "00000000000111000001011111000101111", "d": "00001000010110110011100011000101111",
    "i": "00100000000110000100001000010001110", "l": "01100001000010000100001000010001110",
    "m": "00000000001101010101101011000110001", "n": "00000000001011011001100011000110001",
    "o": "00000000000111010001100011000101110", "p": "00000000001111010001111101000010000",
    "h": "10000100001011011001100011000110001", "r": "00000000001011011001100001000010000",
    "s": "00000000000111010000011100000111110", "t": "01000010001110001000010000100100110",
    "u": "00000000001000110001100011001101101", "c": "00000000000111010000100001000101110",
    "b": "10000100001011011001100011000111110", "f": "00110010010100011100010000100001000",
    "g": "00000011111000110001011110000101110", "j": "00010000000011000010000101001001100",
    "k": "10000100001001010100110001010010010", "q": "00000000000110110011011110000100001",
    "v": "00000000001000110001100010101000100", "w": "00000000001000110001101011010101010",
    "x": "00000000001000101010001000101010001", "y": "00000000001000110001011110000101110",
    "z": "00000000001111100010001000100011111", ":": "00000011000110000000011000110000000",
    "/": "00000000010001000100010001000000000", "_": "00000000000000000000000000000011111",
    ",": "00000000000000000000011000010001000", "=": "00000000001111100000111110000000000",
}


def colormap(values: np.ndarray, name: str) -> np.ndarray:
    """Map values in [0, 1] ``(...)`` to RGB ``(..., 3)`` uint8 with colour map ``name``
    (``"gray"``, ``"viridis"`` or ``"twilight"``; ValueError for others)."""
    if name not in _CMAPS:
        raise ValueError(f"unknown colour map {name!r}; use one of {sorted(_CMAPS)}")
    anchors = _CMAPS[name]
    points = np.array([a[0] for a in anchors])
    colours = np.array([a[1] for a in anchors])
    values = np.clip(values, 0.0, 1.0)
    rgb = np.stack([np.interp(values, points, colours[:, k]) for k in range(3)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def _text(canvas: np.ndarray, text: str, top: int, left: int, scale: int = 2,
          colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Draw ``text`` in ``colour`` (default black) onto an RGB canvas (unknown characters are
    skipped)."""
    x = left
    for char in text:
        glyph = _FONT.get(char)
        if glyph is not None:
            bits = np.array([int(b) for b in glyph], dtype=bool).reshape(7, 5)
            block = np.kron(bits, np.ones((scale, scale), dtype=bool))
            h, w = block.shape
            region = canvas[top:top + h, x:x + w]
            region[block[:region.shape[0], :region.shape[1]]] = colour
        x += 6 * scale


def _format(value: float) -> str:
    return f"{value:.3g}".replace("e+0", "e").replace("e-0", "e-")


def figure(image: np.ndarray, mask: np.ndarray | None = None, title: str = "",
           cmap: str = "viridis") -> np.ndarray:
    """An RGB figure ``(H', W', 3)`` uint8: the image (masked pixels white), a colour bar with
    its minimum, middle and maximum values, and a title. Colour limits come from the unmasked
    pixels."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"figure needs a non-empty (H, W) image; got shape {image.shape}")
    if mask is not None and np.shape(mask) != image.shape:
        raise ValueError(f"mask has shape {np.shape(mask)}; expected {image.shape}")
    valid = np.isfinite(image) if mask is None else (np.asarray(mask, bool) & np.isfinite(image))
    if not valid.any():
        valid = np.isfinite(image)
    low, high = (float(image[valid].min()), float(image[valid].max())) if valid.any() else (0, 1)
    span = high - low if high > low else 1.0
    # upscale small images so that labels stay legible
    zoom = max(1, int(np.ceil(256 / max(image.shape))))
    rgb = colormap((np.nan_to_num(image, nan=low) - low) / span, cmap)
    rgb[~valid] = 255
    rgb = np.kron(rgb, np.ones((zoom, zoom, 1), dtype=np.uint8))
    h, w = rgb.shape[:2]
    pad, bar_w, label_w, title_h = 10, 20, 110, 30
    out = np.full((h + title_h + 2 * pad, w + 3 * pad + bar_w + label_w, 3), 255, np.uint8)
    out[title_h + pad:title_h + pad + h, pad:pad + w] = rgb
    ramp = colormap(np.linspace(1, 0, h)[:, None].repeat(bar_w, 1), cmap)
    bar_left = 2 * pad + w
    out[title_h + pad:title_h + pad + h, bar_left:bar_left + bar_w] = ramp
    label_left = bar_left + bar_w + 5
    for fraction in (0.0, 0.5, 1.0):
        row = title_h + pad + int(round((1 - fraction) * (h - 14)))
        value = low + fraction * span
        _text(out, _format(0.0 if abs(value) < 1e-6 * span else value), row, label_left)
    _text(out, title.lower(), 8, pad)
    return out


#: Line colours of :func:`plot_curves`, one per curve in turn (blue, orange, green, red,
#: purple, brown, pink, grey).
CURVE_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127))


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "",
                xlabel: str = "", log_y: bool = False,
                size: tuple[int, int] = (300, 520)) -> np.ndarray:
    """A line plot as an RGB image ``(H, W, 3)`` uint8: each curve ``name -> (x, y)`` (1-D,
    same length) in its own colour (:data:`CURVE_COLOURS`), axes with their minimum, middle
    and maximum values, a legend and a title. Non-finite points (and, with ``log_y``, points
    <= 0) are left out and break the line; a lone point is drawn as a dot.

    Raises:
        ValueError: no curves, more curves than colours, x and y of different shapes, or no
            point to draw.
    """
    if not curves or len(curves) > len(CURVE_COLOURS):
        raise ValueError(f"plot_curves draws 1 to {len(CURVE_COLOURS)} curves; got {len(curves)}")
    series = []
    for name, (x, y) in curves.items():
        x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"curve {name!r}: x has {x.size} points, y {y.size}")
        valid = np.isfinite(x) & np.isfinite(y) & ((y > 0) if log_y else True)
        y = np.log10(np.where(valid, y, 1.0)) if log_y else y
        series.append((name, x, y, valid))
    xs = np.concatenate([x[v] for _, x, _, v in series])
    ys = np.concatenate([y[v] for _, _, y, v in series])
    if xs.size == 0:
        raise ValueError("plot_curves: no finite point to draw")
    height, width = size
    left, right, top, bottom = 90, 24, 48, 50
    out = np.full((height, width, 3), 255, np.uint8)
    plot_h, plot_w = height - top - bottom, width - left - right
    (x0, x1), (y0, y1) = _limits(xs, 0.0), _limits(ys, 0.05)

    def to_pixels(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cols = left + (x - x0) / (x1 - x0) * (plot_w - 1)
        rows = top + (1 - (y - y0) / (y1 - y0)) * (plot_h - 1)
        return rows, cols

    out[top:top + plot_h, left - 1] = 0  # the y axis
    out[top + plot_h, left - 1:left + plot_w] = 0  # the x axis
    # ticks at the data's minimum, middle and maximum (geometric middle on a log axis)
    low, high = float(ys.min()), float(ys.max())
    for value in dict.fromkeys((low, (low + high) / 2, high)):
        row = int(round(to_pixels(np.zeros(1), np.array([value]))[0][0]))
        out[row, left - 6:left - 1] = 0
        label = _format(10**value if log_y else value)
        _text(out, label, min(max(row - 7, 0), height - 14), left - 10 - 12 * len(label))
    low, high = float(xs.min()), float(xs.max())
    for value in dict.fromkeys((low, (low + high) / 2, high)):
        col = int(round(to_pixels(np.array([value]), np.zeros(1))[1][0]))
        out[top + plot_h:top + plot_h + 5, col] = 0
        label = _format(value)
        _text(out, label, top + plot_h + 8,
              min(max(col - 6 * len(label), 0), width - 12 * len(label)))
    legend_left = left
    for index, (name, x, y, valid) in enumerate(series):
        colour = CURVE_COLOURS[index]
        rows, cols = to_pixels(x, y)
        for k in np.flatnonzero(valid):
            following = k + 1 < x.size and valid[k + 1]
            steps = (int(max(abs(rows[k + 1] - rows[k]), abs(cols[k + 1] - cols[k]))) + 1
                     if following else 1)
            t = np.linspace(0.0, 1.0, steps + 1) if following else np.zeros(1)
            r = np.rint(rows[k] + t * ((rows[k + 1] - rows[k]) if following else 0)).astype(int)
            c = np.rint(cols[k] + t * ((cols[k + 1] - cols[k]) if following else 0)).astype(int)
            lone = not following and not (k > 0 and valid[k - 1])
            reach = range(-2, 3) if lone else (0, 1)  # a lone point as a 5 x 5 dot
            for dr in reach:
                for dc in reach:
                    out[np.clip(r + dr, 0, height - 1), np.clip(c + dc, 0, width - 1)] = colour
        out[28:38, legend_left:legend_left + 14] = colour  # the legend, below the title
        _text(out, name.lower(), 26, legend_left + 20, colour=colour)
        legend_left += 20 + 12 * len(name) + 24
    _text(out, title.lower(), 6, left)
    if xlabel:
        _text(out, xlabel.lower(), height - 18, left + plot_w // 2 - 6 * len(xlabel))
    return out


def _limits(values: np.ndarray, margin: float) -> tuple[float, float]:
    """The span of ``values`` widened by ``margin`` of it on each side (a constant gets a
    unit span around it)."""
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12 * max(abs(low), abs(high), 1.0):
        return low - 0.5, high + 0.5
    margin = margin * (high - low)
    return low - margin, high + margin


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 array as PNG bytes (8-bit RGB, no interlace).

    Raises:
        ValueError: another shape or dtype, or an empty image (a PNG has at least one pixel).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"encode_png needs a non-empty (H, W, 3) uint8 array; got shape "
                         f"{rgb.shape} {rgb.dtype} (convert with colormap() or figure())")
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def save_image(path: str | os.PathLike, image: np.ndarray, mask: np.ndarray | None = None,
               title: str = "", cmap: str = "viridis") -> Path:
    """Write :func:`figure` of ``image`` as a PNG at ``path`` (atomically)."""
    path = Path(path)
    atomic_write_bytes(path, encode_png(figure(image, mask, title, cmap)))
    return path


def save_curves(path: str | os.PathLike, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                **options) -> Path:
    """Write :func:`plot_curves` of ``curves`` as a PNG at ``path`` (atomically)."""
    path = Path(path)
    atomic_write_bytes(path, encode_png(plot_curves(curves, **options)))
    return path


def save_side_by_side(path: str | os.PathLike, images: list[np.ndarray], titles: list[str],
                      masks: list[np.ndarray | None] | None = None, cmap: str = "viridis") -> Path:
    """Several figures next to each other in one PNG (e.g. reconstruction and reference)."""
    masks = masks or [None] * len(images)
    figures = [figure(im, m, t, cmap) for im, m, t in zip(images, masks, titles)]
    height = max(f.shape[0] for f in figures)
    padded = [np.pad(f, ((0, height - f.shape[0]), (0, 0), (0, 0)), constant_values=255)
              for f in figures]
    path = Path(path)
    atomic_write_bytes(path, encode_png(np.concatenate(padded, axis=1)))
    return path
