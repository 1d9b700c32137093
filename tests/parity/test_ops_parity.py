"""Hypothesis parity: pinn's ops against the TensorFlow re-statement of the reference.

Random shapes, offsets (fractional, negative, partly outside the canvas) and real or complex
values go through ``pinn.ops`` (arranged as the reference's ops in ``conventions.py``) and
through ``tf_reference.py`` (itself checked against the real reference's golden arrays).

Offsets and tolerances. Translation, extraction and the unnormalised merge take arbitrary
float32 offsets and agree within ``1e-5 x max|reference|``: the reference forms each source
coordinate as ``x - dx`` in float32, so its bilinear weights carry a rounding error of about
``2**-24 x x`` that pinn's do not. The *normalised* merge and stitch divide by a coverage that
can be tiny at the rim of the covered region, which turns that rounding into large relative
differences there; those tests draw offsets on a 1/16 px grid (dyadic, exact in float32) so
both sides use identical weights, and differ only by summation order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conventions
import fixture_cases
import tf_reference  # skips this module when TensorFlow is missing

pytestmark = pytest.mark.parity

TOL = fixture_cases.TOL
TOL_MERGED = fixture_cases.TOL_MERGED
EXAMPLES = settings.default.max_examples
FEW = max(5, EXAMPLES // 2)  # for the slower composed tests

rel_error = fixture_cases.rel_error


def _values(rng: np.random.Generator, shape, complex_: bool) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if complex_:
        x = (x + 1j * rng.standard_normal(shape)).astype(np.complex64)
    return x


def _floats(bound: float):
    return st.floats(-bound, bound, allow_nan=False, width=32)


def _dyadic(bound: float):
    """Multiples of 1/16 px in [-bound, bound]: exact in float32 together with pixel indices."""
    return st.integers(int(-16 * bound), int(16 * bound)).map(lambda k: k / 16)


@st.composite
def _group_offsets(draw, b: int, c: int, bound: float, exact: bool) -> np.ndarray:
    """(B, 1, 2, C) float32 offsets as (x, y)."""
    elem = _dyadic(bound) if exact else _floats(bound)
    values = draw(st.lists(elem, min_size=2 * b * c, max_size=2 * b * c))
    return np.asarray(values, dtype=np.float32).reshape(b, 1, 2, c)


@st.composite
def _zero_batch_mean_offsets(draw, b: int, c: int, bound: float) -> np.ndarray:
    """Dyadic (B, 1, 2, C) offsets whose mean over all B*C patches is exactly zero (each value
    appears with its negative), so the reference's batch-mean centring is exactly a no-op."""
    k = b * c
    half = draw(st.lists(st.tuples(_dyadic(bound), _dyadic(bound)), min_size=k // 2,
                         max_size=k // 2))
    pts = half + [(-x, -y) for x, y in half] + ([(0.0, 0.0)] if k % 2 else [])
    order = draw(st.permutations(range(k)))
    xy = np.asarray([pts[i] for i in order], dtype=np.float32)  # (B*C, 2)
    return np.ascontiguousarray(xy.reshape(b, c, 2).transpose(0, 2, 1)[:, None])


@st.composite
def _zero_group_mean_offsets(draw, b: int, c: int, bound: float) -> np.ndarray:
    """Dyadic (B, 1, 2, C) offsets with zero mean in every group (exact for C = 1 or 4), like
    the reference's ``coords_relative``."""
    t = draw(_group_offsets(b, c, bound, exact=True)).astype(np.float64)
    return (t - t.mean(axis=-1, keepdims=True)).astype(np.float32)


# --- translate ---------------------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(data=st.data(), k=st.integers(1, 4), h=st.integers(1, 24), w=st.integers(1, 24),
       complex_=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_translate(data, k, h, w, complex_, seed):
    imgs = _values(np.random.default_rng(seed), (k, h, w, 1), complex_)
    bound = max(h, w) + 2.0
    offsets = np.asarray(data.draw(st.lists(st.tuples(_floats(bound), _floats(bound)),
                                            min_size=k, max_size=k)), dtype=np.float32)
    expected = tf_reference.translate(imgs, offsets)
    assert rel_error(conventions.translate(imgs, offsets), expected) <= TOL


def test_translate_delta_lands_where_the_reference_puts_it():
    """A delta at (row 10, col 20) shifted by (dx, dy) = (3, 5) lands at (row 15, col 23) in
    both (the reference's documented example)."""
    img = np.zeros((1, 32, 32, 1), np.float32)
    img[0, 10, 20, 0] = 1
    for out in (tf_reference.translate(img, [[3.0, 5.0]]),
                conventions.translate(img, np.asarray([[3.0, 5.0]], np.float32))):
        assert np.unravel_index(np.argmax(out[0, ..., 0]), (32, 32)) == (15, 23)
        assert out.sum() == pytest.approx(1.0)


# --- diffract, illuminate, likelihood ----------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(k=st.integers(1, 3), h=st.integers(1, 33), w=st.integers(1, 33),
       seed=st.integers(0, 2**31 - 1))
def test_diffract(k, h, w, seed):
    x = _values(np.random.default_rng(seed), (k, h, w, 1), complex_=True)
    expected = tf_reference.pad_and_diffract(x)
    assert rel_error(conventions.pad_and_diffract(x), expected) <= TOL


@settings(max_examples=EXAMPLES)
@given(k=st.integers(1, 4), n=st.integers(2, 24), use_mask=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_illuminate(k, n, use_mask, seed):
    rng = np.random.default_rng(seed)
    x = _values(rng, (k, n, n, 1), complex_=True)
    probe = _values(rng, (n, n), complex_=True)
    expected = tf_reference.probe_illumination(x, probe, use_mask)
    actual = conventions.probe_illumination(x, probe, use_mask)
    assert rel_error(actual[0], expected[0]) <= TOL  # the exit waves
    assert rel_error(actual[1], expected[1]) <= TOL  # the probe as applied
    np.testing.assert_array_equal(actual[2], expected[2][..., 0].real)  # the disk mask


@settings(max_examples=EXAMPLES)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6),
                       st.integers(1, 4)),
       log_rate=st.floats(-3, 5), seed=st.integers(0, 2**31 - 1))
def test_poisson_nll(shape, log_rate, seed):
    """Elementwise NLL, its mean and the full per-sample Poisson NLL. The terms ``rate``,
    ``k log rate`` and ``lgamma(k + 1)`` can nearly cancel, so errors are measured against the
    size of the terms, not of the result."""
    rng = np.random.default_rng(seed)
    rate = (10.0 ** log_rate * rng.uniform(0.1, 2.0, shape)).astype(np.float32)
    counts = rng.poisson(10.0 ** log_rate, shape).astype(np.float32)  # includes zeros
    expected = tf_reference.negloglik(counts, rate)
    actual = conventions.negloglik(counts, rate)
    k, r = counts.astype(np.float64), rate.astype(np.float64)
    terms = r + np.abs(np.where(k > 0, k * np.log(r), 0.0))  # (B, H, W, C)
    full_terms = terms + np.vectorize(math.lgamma)(k + 1)
    scales = (terms.max(), terms.max(), full_terms.sum(axis=(1, 2, 3)).max())
    for a, e, scale in zip(actual, expected, scales):
        assert np.shape(a) == np.shape(e)
        assert np.abs(np.asarray(a, np.float64) - e).max() <= TOL * scale


@settings(max_examples=FEW)
@given(b=st.integers(1, 3), gridsize=st.sampled_from([1, 2]), n=st.sampled_from([8, 12, 16]),
       log_photons=st.floats(2, 9), seed=st.integers(0, 2**31 - 1))
def test_illuminate_and_diffract(b, gridsize, n, log_photons, seed):
    rng = np.random.default_rng(seed)
    k = b * gridsize**2
    y_i = rng.uniform(0.0, 2.0, (k, n, n, 1)).astype(np.float32)
    y_phi = rng.uniform(-np.pi, np.pi, (k, n, n, 1)).astype(np.float32)
    probe = _values(rng, (n, n), complex_=True)
    nphotons = 10.0**log_photons
    expected = tf_reference.illuminate_and_diffract(y_i, y_phi, probe, nphotons, gridsize)
    actual = conventions.illuminate_and_diffract(y_i, y_phi, probe, nphotons, gridsize)
    for a, e in zip(actual[:3], expected[:3]):
        assert rel_error(a, e) <= TOL
    assert actual[3] == pytest.approx(expected[3], rel=TOL)


# --- extraction and merging --------------------------------------------------------------------


@settings(max_examples=EXAMPLES)
@given(data=st.data(), b=st.integers(1, 3), c=st.integers(1, 4), half_n=st.integers(2, 8),
       margin=st.integers(1, 6), complex_=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_extract_patches(data, b, c, half_n, margin, complex_, seed):
    n, size = 2 * half_n, 2 * (half_n + margin)
    canvas = _values(np.random.default_rng(seed), (b, size, size, 1), complex_)
    offsets = data.draw(_group_offsets(b, c, size / 2 + 3, exact=False))
    expected = tf_reference.extract_patches_position(canvas, offsets, n)
    assert rel_error(conventions.extract_patches_position(canvas, offsets, n), expected) <= TOL


def _batch_centred(offsets: np.ndarray) -> np.ndarray:
    """The reference's centring of merge offsets by their float32 mean over all B*C patches."""
    flat = offsets[:, 0].transpose(0, 2, 1).reshape(-1, 2)
    return (offsets - flat.mean(axis=0, dtype=np.float32)[None, None, :, None]).astype(np.float32)


@settings(max_examples=EXAMPLES)
@given(data=st.data(), b=st.integers(1, 3), c=st.integers(1, 4), half_n=st.integers(2, 8),
       margin=st.integers(0, 5), seed=st.integers(0, 2**31 - 1))
def test_merge_unnormalised(data, b, c, half_n, margin, seed):
    """Numerator (canvas x divisor) and divisor of the in-model merge for arbitrary offsets.

    pinn is given the offsets after the reference's batch-mean centring (docs/DESIGN.md §8,
    deviation 3 moves that centring out of the op)."""
    n, size = 2 * half_n, 2 * (half_n + margin)
    obj = _values(np.random.default_rng(seed), (b, n, n, c), complex_=True)
    offsets = data.draw(_group_offsets(b, c, size / 2 + 3, exact=False))
    merged, norm = tf_reference.reassemble_patches(obj, offsets, size)
    p_merged, p_norm = conventions.reassemble_patches(obj, _batch_centred(offsets), size)
    assert rel_error(p_norm, norm) <= TOL
    assert rel_error(p_merged * p_norm, merged * norm) <= TOL


@settings(max_examples=EXAMPLES)
@given(data=st.data(), b=st.integers(1, 3), c=st.integers(1, 4), half_n=st.integers(2, 8),
       margin=st.integers(0, 5), centre_only=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_merge(data, b, c, half_n, margin, centre_only, seed):
    """The normalised in-model merge, offsets with zero batch mean (no conversion needed)."""
    n, size = 2 * half_n, 2 * (half_n + margin)
    obj = _values(np.random.default_rng(seed), (b, n, n, c), complex_=True)
    if centre_only:  # a decoder without the border branch fills only the centre window
        obj = obj * tf_reference.center_mask(n)
    offsets = data.draw(_zero_batch_mean_offsets(b, c, size / 2 + 3))
    merged, norm = tf_reference.reassemble_patches(obj, offsets, size)
    p_merged, p_norm = conventions.reassemble_patches(obj, offsets, size)
    assert rel_error(p_norm, norm) <= TOL
    assert rel_error(p_merged, merged) <= TOL_MERGED


@settings(max_examples=EXAMPLES)
@given(data=st.data(), n_log2=st.integers(0, 3), n=st.integers(4, 24),
       m=st.integers(2, 24), seed=st.integers(0, 2**31 - 1))
def test_reassemble_position(data, n_log2, n, m, seed):
    """Scan stitching, odd and even N and M. A power-of-two number of patches and dyadic
    offsets keep the float32 mean, and so every bilinear weight, exact on both sides."""
    count, m = 2**n_log2, min(m, n)
    patches = _values(np.random.default_rng(seed), (count, n, n, 1), complex_=True)
    xy = data.draw(st.lists(st.tuples(_dyadic(24), _dyadic(24)), min_size=count,
                            max_size=count))
    offsets = np.asarray(xy, dtype=np.float64).reshape(count, 1, 1, 2)
    offsets += data.draw(_dyadic(100))  # a common shift, removed by the mean
    expected = tf_reference.reassemble_position(patches, offsets, m)
    assert rel_error(conventions.reassemble_position(patches, offsets, m), expected) <= TOL


def test_reassemble_position_peaks():
    """The documented example: deltas at offsets (0, 0) and (10, -6), M = 20, give a 32 x 32
    canvas with peaks at (row 19, col 11) and (row 13, col 21), in both."""
    patches = np.zeros((2, 64, 64, 1), np.complex64)
    patches[:, 32, 32, 0] = 1
    offsets = np.asarray([[0.0, 0.0], [10.0, -6.0]]).reshape(2, 1, 1, 2)
    for out in (tf_reference.reassemble_position(patches, offsets, 20),
                conventions.reassemble_position(patches, offsets, 20)):
        assert out.shape == (32, 32, 1)
        peaks = sorted(zip(*np.nonzero(np.abs(out[..., 0]) > 0.4)))
        assert peaks == [(13, 21), (19, 11)]


# --- the composed chain after the CNN ----------------------------------------------------------


@settings(max_examples=FEW)
@given(data=st.data(), b=st.integers(1, 3), gridsize=st.sampled_from([1, 2]),
       n=st.sampled_from([8, 12, 16]), use_mask=st.booleans(), centre_only=st.booleans(),
       scale=st.floats(0.5, 10, width=32), seed=st.integers(0, 2**31 - 1))
def test_physics_forward(data, b, gridsize, n, use_mask, centre_only, scale, seed):
    """merge -> trim -> extract -> illuminate -> diffract -> scale, built from pinn ops, with
    zero-mean offsets in every group (the reference's coords_relative)."""
    c = gridsize**2
    size = conventions.padded_size(n, gridsize)
    rng = np.random.default_rng(seed)
    obj = _values(rng, (b, n, n, c), complex_=True)
    if centre_only:
        obj = obj * tf_reference.center_mask(n)
    probe = _values(rng, (n, n), complex_=True)
    offsets = data.draw(_zero_group_mean_offsets(b, c, n / 4))
    expected = tf_reference.physics_forward(obj, offsets, probe, scale, size, use_mask)
    actual = conventions.physics_forward(obj, offsets, probe, scale, size, use_mask)
    for key, value in expected.items():
        merged = key in ("padded_obj", "trimmed_obj") or gridsize > 1
        tol = TOL_MERGED if merged and key != "norm" else TOL
        assert rel_error(actual[key], value) <= tol, key


# --- docs/DESIGN.md §8, deviations 1 and 3: per-group merge without batch-mean centring -------


def _delta_groups(n: int) -> np.ndarray:
    obj = np.zeros((2, n, n, 1), np.complex64)
    obj[:, n // 2, n // 2, 0] = 1
    return obj


def test_merge_agrees_when_group_offsets_are_zero_mean():
    """gridsize 2, offsets zero-mean per group: no centring happens and the two agree."""
    n, size = 16, conventions.padded_size(16, 2)
    rng = np.random.default_rng(1)
    obj = _values(rng, (2, n, n, 4), complex_=True) * tf_reference.center_mask(n)
    t = np.asarray([[-2.0, 2.0, -2.0, 2.0], [-2.0, -2.0, 2.0, 2.0]], np.float32)
    offsets = np.stack([t, 1.5 * t])[:, None]  # (2, 1, 2, 4)
    merged, _ = tf_reference.reassemble_patches(obj, offsets, size)
    assert rel_error(conventions.reassemble_patches(obj, offsets, size)[0], merged) <= TOL


def test_merge_is_per_group_without_batch_mean_centring():
    """gridsize 1 with offsets t = (2, 0) and (4, 0) (batch mean (3, 0)): the reference centres
    them to (-1, 0) and (1, 0), so each canvas depends on the other group; pinn places each
    patch at P//2 - t of its own group. A delta at the patch centre shows where."""
    n = 16
    size = conventions.padded_size(n, 1)
    centre = size // 2
    obj = _delta_groups(n)
    offsets = np.asarray([[2.0, 0.0], [4.0, 0.0]], np.float32).reshape(2, 1, 2, 1)

    def peaks(canvas):
        return [tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(c[..., 0])), c.shape[:2]))
                for c in canvas]

    reference, _ = tf_reference.reassemble_patches(obj, offsets, size)
    pinn, _ = conventions.reassemble_patches(obj, offsets, size)
    assert peaks(reference) == [(centre, centre + 1), (centre, centre - 1)]
    assert peaks(pinn) == [(centre, centre - 2), (centre, centre - 4)]
    # pinn after the reference's centring is the reference (the deviation is only the centring)
    centred, _ = conventions.reassemble_patches(obj, _batch_centred(offsets), size)
    assert rel_error(centred, reference) <= TOL

    # changing group 1 moves group 0 in the reference, never in pinn
    moved = offsets.copy()
    moved[1, 0, 0, 0] = 8.0
    reference_moved, _ = tf_reference.reassemble_patches(obj, moved, size)
    pinn_moved, _ = conventions.reassemble_patches(obj, moved, size)
    assert peaks(reference_moved)[0] != peaks(reference)[0]
    np.testing.assert_array_equal(pinn_moved[0], pinn[0])


def test_merge_then_extract_round_trip_only_in_pinn_for_non_zero_mean_offsets():
    """The reference extracts at +t without centring, so with non-zero-mean offsets its
    patches are not the ones it merged; pinn's per-group merge and extraction use the same
    positions and return the centre-window content it merged (up to the 1/1.001 floor)."""
    n = 16
    size = conventions.padded_size(n, 1)
    rng = np.random.default_rng(2)
    obj = _values(rng, (2, n, n, 1), complex_=True) * tf_reference.center_mask(n)
    offsets = np.asarray([[2.0, 0.0], [4.0, 1.0]], np.float32).reshape(2, 1, 2, 1)
    probe = np.ones((n, n), np.complex64)
    reference = tf_reference.physics_forward(obj, offsets, probe, 1.0, size, False)
    pinn = conventions.physics_forward(obj, offsets, probe, 1.0, size, False)
    target = obj / 1.001
    assert rel_error(pinn["patches"], target) <= TOL
    assert rel_error(reference["patches"], target) > 0.5
