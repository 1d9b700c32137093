"""A TensorFlow re-statement of the reference's physics ops, for parity tests.

Written from a study of the reference's code (summarised in docs/DESIGN.md §7), in the
reference's own conventions: channels-last NHWC, "flat" patches ``(B*C, N, N, 1)`` ordered
``b*C + c``, group offsets ``(B, 1, 2, C)`` ordered ``(x, y)``, translation offsets ``(K, 2)``
ordered ``(dx, dy)`` moving content by ``+offset`` (the XLA translation path; the reference's mirrored non-XLA
fallback is deliberately not modelled). It is checked against the golden arrays of the real
reference in ``test_tf_reference_fixtures.py`` and then used as the oracle of the hypothesis
tests in ``test_ops_parity.py``.

Every public function takes and returns NumPy arrays. The TensorFlow graphs are traced once per
static configuration and reused (``reduce_retracing`` generalises the shapes), so hypothesis can
drive many shapes without paying for a trace each time.

Importing this module skips the calling test module when TensorFlow is not installed.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
tf = pytest.importorskip("tensorflow")

MERGE_FLOOR = 0.001  # added to the centre-window coverage in the in-model merge (section 4.7)
STITCH_FLOOR = 1e-9  # added to the coverage when stitching a scan (section 10.1)


# ---------------------------------------------------------------------------------------------
# graph builders (tensors in, tensors out; shapes are dynamic)


def _translate_real(img, t):
    """Bilinear translation of a real NHWC stack: ``out[y, x] = img[y - dy, x - dx]``.

    img: (K, H, W, ch) float. t: (K_t, 2) as (dx, dy); image i uses t[i mod K_t]. Each of the
    four corner samples is zero when its integer index lies outside the image.
    """
    shape = tf.shape(img)
    k, h, w, ch = shape[0], shape[1], shape[2], shape[3]
    t = tf.cast(t, img.dtype)
    t = tf.gather(t, tf.range(k) % tf.shape(t)[0])  # modular batch broadcast
    ys = tf.cast(tf.range(h), img.dtype)
    xs = tf.cast(tf.range(w), img.dtype)
    sy = ys[None, :, None] - t[:, 1][:, None, None]  # (K, H, 1) source rows
    sx = xs[None, None, :] - t[:, 0][:, None, None]  # (K, 1, W) source columns
    y0f = tf.floor(sy)
    x0f = tf.floor(sx)
    wy = sy - y0f
    wx = sx - x0f
    y0 = tf.cast(y0f, tf.int32)
    x0 = tf.cast(x0f, tf.int32)
    flat = tf.reshape(img, tf.stack([k, h * w, ch]))

    def corner(yi, xi):
        valid = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)  # (K, H, W)
        index = tf.clip_by_value(yi, 0, h - 1) * w + tf.clip_by_value(xi, 0, w - 1)
        index = tf.reshape(index, tf.stack([k, h * w]))
        values = tf.gather(flat, index, batch_dims=1)  # (K, H*W, ch)
        values = tf.reshape(values, tf.stack([k, h, w, ch]))
        return tf.where(valid[..., None], values, tf.zeros_like(values))

    yb = tf.broadcast_to(y0, tf.stack([k, h, w]))
    xb = tf.broadcast_to(x0, tf.stack([k, h, w]))
    wy = wy[..., None]
    wx = wx[..., None]
    top = (1 - wx) * corner(yb, xb) + wx * corner(yb, xb + 1)
    bottom = (1 - wx) * corner(yb + 1, xb) + wx * corner(yb + 1, xb + 1)
    return (1 - wy) * top + wy * bottom


def _complexify(fn, x, *args):
    """Apply a real function to the real and imaginary parts separately (complexify_function)."""
    if x.dtype.is_complex:
        return tf.complex(fn(tf.math.real(x), *args), fn(tf.math.imag(x), *args))
    return fn(x, *args)


def _translate(img, t):
    return _complexify(_translate_real, img, t)


def _channel_to_flat(x):
    """(B, H, W, C) -> (B*C, H, W, 1), flat index b*C + c."""
    shape = tf.shape(x)
    x = tf.transpose(x, [0, 3, 1, 2])  # (B, C, H, W)
    return tf.reshape(x, tf.stack([shape[0] * shape[3], shape[1], shape[2], 1]))


def _flat_to_channel(x, c):
    """(B*C, H, W, 1) -> (B, H, W, C), the inverse of _channel_to_flat."""
    shape = tf.shape(x)
    x = tf.reshape(x, tf.stack([-1, c, shape[1], shape[2]]))
    return tf.transpose(x, [0, 2, 3, 1])


def _flatten_offsets(t):
    """(B, 1, 2, C) -> (B*C, 2); row b*C + c is [x, y] of channel c of group b."""
    t = tf.transpose(t[:, 0], [0, 2, 1])  # (B, C, 2)
    return tf.reshape(t, [-1, 2])


def _pad_patches(x, size):
    """Zero pad (size - N)//2 on each side of the two spatial axes."""
    n = tf.shape(x)[1]
    p = (size - n) // 2
    return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])


def _trim_reconstruction(x, n):
    """x[:, clip:-clip, clip:-clip] with clip = (M - N)//2 (empty when M == N, as upstream)."""
    m = tf.shape(x)[1]
    clip = (m - n) // 2
    return x[:, clip:-clip, clip:-clip, :]


def _center_mask(n, dtype):
    """(N, N, 1): 1 on rows and columns [N/4, 3N/4), else 0 (mk_centermask 'center')."""
    idx = tf.range(n)
    inside = (4 * idx >= n) & (4 * idx < 3 * n)  # [N/4, 3N/4) without rounding N/4
    m = tf.cast(inside[:, None] & inside[None, :], dtype)
    return m[..., None]


def _disk_mask(n, dtype):
    """(N, N): 1 where the distance from ((N-1)/2, (N-1)/2) is < N//4 (hard probe mask)."""
    c = tf.cast(tf.range(n), tf.float64) - tf.cast(n - 1, tf.float64) / 2
    r = tf.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    return tf.cast(r < tf.cast(n // 4, tf.float64), dtype)


def _diffract(x):
    """pad_and_diffract(pad=False): sqrt(fftshift(|fft2 psi|^2 / (h*w))). (K, h, w, 1) -> float."""
    shape = tf.shape(x)
    psi = tf.cast(tf.transpose(x, [0, 3, 1, 2]), tf.complex64)  # (K, 1, h, w)
    f = tf.signal.fft2d(psi)
    intensity = (tf.math.real(f) ** 2 + tf.math.imag(f) ** 2) / tf.cast(shape[1] * shape[2],
                                                                          tf.float32)
    amp = tf.sqrt(tf.signal.fftshift(intensity, axes=(-2, -1)))
    return tf.transpose(amp, [0, 2, 3, 1])


def _extract(canvas, offsets, n):
    """extract_patches_position: (B, M, M, 1), (B, 1, 2, C) -> flat (B*C, N, N, 1)."""
    c = tf.shape(offsets)[3]
    tiled = tf.tile(canvas, tf.stack([1, 1, 1, c]))  # (B, M, M, C): canvas repeated C times
    flat = _channel_to_flat(tiled)  # (B*C, M, M, 1)
    tflat = tf.math.real(tf.cast(_flatten_offsets(offsets), tf.complex64))  # real part only
    moved = _translate(flat, tflat)  # +t
    return _trim_reconstruction(moved, n)


def _merge(obj, offsets, size):
    """Per-group in-model merge (section 4.7) with the batch-mean centring of the offsets.

    obj (B, N, N, C) complex, offsets (B, 1, 2, C) -> (canvas (B, P, P, 1), norm (B, P, P, 1)).
    """
    shape = tf.shape(obj)
    b, n, c = shape[0], shape[1], shape[3]
    tflat = tf.cast(_flatten_offsets(offsets), tf.float32)
    tc = tflat - tf.reduce_mean(tflat, axis=0, keepdims=True)  # batch-mean centring

    def place(flat):  # (B*C, N, N, 1) real -> (B, P, P, 1) summed over C
        moved = _translate(_pad_patches(flat, size), -tc)
        moved = tf.reshape(moved, tf.stack([b, c, size, size, 1]))
        return tf.reduce_sum(moved, axis=1)

    num = _complexify(place, _channel_to_flat(obj))
    mask = tf.tile(_center_mask(n, tf.float32)[None], tf.stack([b * c, 1, 1, 1]))
    norm = place(mask) + MERGE_FLOOR
    canvas = tf.complex(tf.math.real(num) / norm, tf.math.imag(num) / norm)
    return canvas, norm


def _illuminate(x, probe, use_mask):
    """ProbeIllumination: flat (K, N, N, 1) complex times probe (N, N) [times the disk mask]."""
    n = tf.shape(probe)[0]
    mask = _disk_mask(n, tf.complex64)
    w = tf.cast(probe, tf.complex64)
    if use_mask:
        w = w * mask
    return x * w[None, :, :, None], w, mask[..., None]


# ---------------------------------------------------------------------------------------------
# traced functions, one per static configuration


@functools.lru_cache(maxsize=None)
def _compiled(name: str, **static):
    fn = _GRAPHS[name]
    return tf.function(functools.partial(fn, **static), reduce_retracing=True)


def _g_translate(imgs, offsets):
    return _translate(imgs, offsets)


def _g_diffract(x):
    return _diffract(x)


def _g_extract(canvas, offsets, n):
    return _extract(canvas, offsets, n)


def _g_merge(obj, offsets, size):
    return _merge(obj, offsets, size)


def _g_reassemble_position(obj, offsets, m):
    n = tf.shape(obj)[1]
    crop = obj[:, n // 2 - m // 2:n // 2 + m // 2, n // 2 - m // 2:n // 2 + m // 2, :]
    g = tf.cast(tf.reshape(offsets, [-1, 2]), tf.float32)  # (n, 2) as (x, y)
    g = g - tf.reduce_mean(g, axis=0, keepdims=True)
    pad = tf.cast(tf.math.ceil(tf.reduce_max(tf.abs(g))), tf.int32)
    pad = pad + pad % 2  # odd pads grow by one
    paddings = tf.stack([[0, 0], [pad, pad], [pad, pad], [0, 0]])
    num = tf.reduce_sum(_translate(tf.pad(crop, paddings), g), axis=0)
    ones = tf.pad(tf.ones_like(tf.math.real(crop)), paddings)
    den = tf.reduce_sum(_translate(ones, g), axis=0)
    return tf.complex(tf.math.real(num) / (STITCH_FLOOR + den),
                      tf.math.imag(num) / (STITCH_FLOOR + den))


def _g_illuminate(x, probe, *, use_mask):
    return _illuminate(x, probe, use_mask)


def _g_negloglik(y_true, y_pred):
    loss = tf.nn.log_poisson_loss(y_true, tf.math.log(y_pred), compute_full_loss=False)
    full = y_pred - tf.math.xlogy(y_true, y_pred) + tf.math.lgamma(y_true + 1)
    return loss, tf.reduce_mean(loss), tf.reduce_sum(full, axis=[1, 2, 3])


def _g_illuminate_and_diffract(y_i, y_phi, probe, nphotons, c):
    probe = tf.cast(probe, tf.complex64)
    p_amp = tf.abs(probe)[None, :, :, None]
    s = tf.sqrt(nphotons / tf.reduce_mean(tf.reduce_sum((y_i * p_amp) ** 2, axis=[1, 2, 3])))
    phase = tf.complex(tf.cos(y_phi), tf.sin(y_phi))
    obj = tf.cast(s * y_i, tf.complex64) * phase * probe[None, :, :, None]
    x = _diffract(obj) / s
    return (_flat_to_channel(x, c), _flat_to_channel(tf.abs(obj) / s, c),
            _flat_to_channel(y_phi, c), s)


def _g_physics_forward(obj, offsets, probe, scale, size, *, use_mask):
    n = tf.shape(obj)[1]
    c = tf.shape(obj)[3]
    canvas, norm = _merge(obj, offsets, size)
    trimmed = _trim_reconstruction(canvas, n)
    patches = _extract(canvas, offsets, n)
    illuminated, _, _ = _illuminate(patches, probe, use_mask)
    pred_amp = _flat_to_channel(_diffract(illuminated), c)
    scaled = scale * pred_amp
    return {
        "padded_obj": canvas, "norm": norm, "trimmed_obj": trimmed, "patches": patches,
        "illuminated": illuminated, "pred_amp": pred_amp, "pred_amp_scaled": scaled,
        "pred_intensity": scaled ** 2,
    }


_GRAPHS = {
    "translate": _g_translate,
    "diffract": _g_diffract,
    "extract": _g_extract,
    "merge": _g_merge,
    "reassemble_position": _g_reassemble_position,
    "illuminate": _g_illuminate,
    "negloglik": _g_negloglik,
    "illuminate_and_diffract": _g_illuminate_and_diffract,
    "physics_forward": _g_physics_forward,
}


def _numpy(x):
    if isinstance(x, dict):
        return {k: v.numpy() for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(v.numpy() for v in x)
    return x.numpy()


def _complex(x):
    return tf.constant(np.asarray(x, dtype=np.complex64))


def _real(x):
    return tf.constant(np.asarray(x, dtype=np.float32))


def _int(x):
    return tf.constant(int(x), tf.int32)


def _image(x):
    x = np.asarray(x)
    return _complex(x) if np.iscomplexobj(x) else _real(x)


# ---------------------------------------------------------------------------------------------
# public NumPy API (reference conventions)


def translate(imgs, offsets):
    """The Translation layer. imgs (K, H, W, ch) real or complex; offsets (K, 2) as (dx, dy)."""
    return _numpy(_compiled("translate")(_image(imgs), _real(offsets)))


def pad_and_diffract(x):
    """(K, N, N, 1) complex -> float32 amplitude (K, N, N, 1), DC at (N/2, N/2)."""
    return _numpy(_compiled("diffract")(_complex(x)))


def extract_patches_position(canvas, offsets_xy, n):
    """canvas (B, M, M, 1), offsets (B, 1, 2, C) -> flat patches (B*C, N, N, 1)."""
    return _numpy(_compiled("extract")(_image(canvas), _real(offsets_xy), _int(n)))


def reassemble_patches(obj, offsets_xy, padded_size):
    """Per-group merge: obj (B, N, N, C), offsets (B, 1, 2, C) -> (merged, norm), (B, P, P, 1)."""
    return _numpy(_compiled("merge")(_complex(obj), _real(offsets_xy), _int(padded_size)))


def reassemble_position(obj, global_offsets, m):
    """Scan stitching: obj (n, N, N, 1) complex, float64 offsets (n, 1, 1, 2) -> (S, S, 1)."""
    global_offsets = np.asarray(global_offsets)
    assert global_offsets.dtype == np.float64, "the reference asserts float64 global offsets"
    fn = _compiled("reassemble_position")
    return _numpy(fn(_complex(obj), tf.constant(global_offsets), _int(m)))


def probe_illumination(x, probe, use_mask):
    """ProbeIllumination: flat (K, N, N, 1), probe (N, N) -> (illuminated, probe used, mask)."""
    fn = _compiled("illuminate", use_mask=bool(use_mask))
    return _numpy(fn(_complex(x), _complex(probe)))


def negloglik(y_true, y_pred):
    """-> (elementwise loss, mean loss, per-sample full Poisson NLL incl. lgamma(k+1))."""
    return _numpy(_compiled("negloglik")(_real(y_true), _real(y_pred)))


def illuminate_and_diffract(y_i, y_phi, probe, nphotons, gridsize):
    """Simulator without Poisson noise: flat (K, N, N, 1) inputs -> (X, Y_I, Y_phi) channel
    format (K/C, N, N, C) and the data-derived intensity scale."""
    fn = _compiled("illuminate_and_diffract")
    x, yi, yp, s = _numpy(fn(_real(y_i), _real(y_phi), _complex(probe),
                              tf.constant(float(nphotons), tf.float32), _int(int(gridsize) ** 2)))
    return x, yi, yp, float(s)


def physics_forward(obj, offsets_xy, probe, intensity_scale, padded_size, use_mask):
    """merge -> trim -> extract -> illuminate -> diffract -> scale; returns every intermediate."""
    fn = _compiled("physics_forward", use_mask=bool(use_mask))
    return _numpy(fn(_complex(obj), _real(offsets_xy), _complex(probe),
                     tf.constant(float(intensity_scale), tf.float32), _int(padded_size)))


def center_mask(n):
    """(N, N, 1) float32 centre-window mask."""
    return _center_mask(n, tf.float32).numpy()


def disk_mask(n):
    """(N, N) float32 hard probe mask."""
    return _disk_mask(n, tf.float32).numpy()


def channel_to_flat(x):
    return _channel_to_flat(tf.constant(x)).numpy()


def flat_to_channel(x, c):
    return _flat_to_channel(tf.constant(x), c).numpy()


def flatten_offsets(t):
    return _flatten_offsets(tf.constant(t)).numpy()
