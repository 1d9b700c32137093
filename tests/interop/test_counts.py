"""Detector counts -> amplitude: sqrt of the counts, bad pixels filled from their neighbours
(or zeroed), negative counts clipped, NaN only where masked, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ptychodus_helpers import SKIP_REASON

pytest.importorskip("ptychodus.api.reconstruct", reason=SKIP_REASON)

from pinn.errors import ConfigError, DataError  # noqa: E402
from pinn.interop.ptychodus import counts_to_amplitude  # noqa: E402


def test_amplitude_is_the_root_of_the_counts_in_float32():
    counts = np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4)
    out = counts_to_amplitude(counts)
    assert out.dtype == torch.float32 and out.shape == (2, 4, 4)
    np.testing.assert_array_equal(out.numpy(), np.sqrt(counts.astype(np.float64)).astype(
        np.float32))


def test_a_bad_pixel_takes_the_mean_of_its_neighbours():
    counts = np.arange(25, dtype=np.float64).reshape(1, 5, 5) ** 2
    counts[0, 2, 2] = 1e6  # a hot pixel
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 2] = True
    out = counts_to_amplitude(counts, mask).numpy()
    neighbours = np.delete(counts[0, 1:4, 1:4].ravel(), 4)
    assert out[0, 2, 2] == pytest.approx(np.sqrt(neighbours.mean()), rel=1e-6)
    good = ~mask
    np.testing.assert_allclose(out[0][good], np.sqrt(counts[0][good]), rtol=1e-6)


def test_a_cluster_fills_from_its_edges_inwards():
    counts = np.full((3, 7, 7), 9.0)
    mask = np.zeros((7, 7), dtype=bool)
    mask[1:6, 1:6] = True  # a 5 x 5 gap inside a constant pattern
    counts[:, mask] = np.nan  # values under the mask are never read
    np.testing.assert_allclose(counts_to_amplitude(counts, mask).numpy(), 3.0, rtol=1e-6)


def test_zero_fill_and_a_fully_masked_detector_give_zeros():
    counts = np.full((2, 4, 4), 16.0)
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    out = counts_to_amplitude(counts, mask, fill="zero").numpy()
    assert (out[:, 0, 0] == 0).all() and (out[:, 1:, 1:] == 4).all()
    everything = np.ones((4, 4), dtype=bool)
    assert not counts_to_amplitude(counts, everything).numpy().any()


def test_negative_counts_are_clipped():
    counts = np.array([[[-4.0, 4.0], [0.0, 1.0]]])
    np.testing.assert_array_equal(counts_to_amplitude(counts).numpy(), [[[0, 2], [0, 1]]])


def test_nan_outside_the_mask_is_refused_with_the_pattern_index():
    counts = np.ones((3, 4, 4))
    counts[2, 1, 1] = np.inf
    with pytest.raises(DataError, match="pattern 2 .*bad-pixel mask"):
        counts_to_amplitude(counts)


@pytest.mark.parametrize("counts, mask, match", [
    (np.ones((4, 4)), None, r"\(M, N, N\)"),
    (np.ones((2, 4, 5)), None, "square"),
    (np.ones((0, 4, 4)), None, r"\(M, N, N\)"),
    (np.ones((2, 4, 4), dtype=complex), None, "dtype"),
    (np.ones((2, 4, 4)), np.zeros((5, 5), dtype=bool), "mask"),
    (np.ones((2, 4, 4)), np.zeros((4, 4), dtype=int), "mask"),
])
def test_refuses_bad_shapes(counts, mask, match):
    with pytest.raises(DataError, match=match):
        counts_to_amplitude(counts, mask)


def test_refuses_an_unknown_fill():
    with pytest.raises(ConfigError, match="neighbors"):
        counts_to_amplitude(np.ones((1, 2, 2)), fill="median")
