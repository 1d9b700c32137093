"""Scan positions between Ptychodus metres and pinn pixels: both directions invert each
other, agree with Ptychodus' own metres -> pixel mapping plus the half-pixel window rule, and
refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _ptychodus_helpers import SKIP_REASON
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("ptychodus.api.object", reason=SKIP_REASON)

from ptychodus.api.object import ObjectGeometry  # noqa: E402
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence  # noqa: E402

from pinn.errors import DataError  # noqa: E402
from pinn.interop.ptychodus import ObjectFrame, positions_from_pinn, positions_to_pinn  # noqa: E402
from pinn.interop.ptychodus.geometry import window_offset_px  # noqa: E402

frames = st.builds(
    ObjectFrame,
    height_px=st.integers(1, 4000), width_px=st.integers(1, 4000),
    pixel_height_m=st.floats(1e-10, 1e-5), pixel_width_m=st.floats(1e-10, 1e-5),
    center_y_m=st.floats(-1e-3, 1e-3), center_x_m=st.floats(-1e-3, 1e-3))
sizes = st.integers(1, 300)
pixel_positions = st.lists(st.tuples(st.floats(-500, 4500), st.floats(-500, 4500)),
                           min_size=1, max_size=20)


@given(frame=frames, size=sizes, points=pixel_positions)
def test_pixels_to_metres_and_back(frame, size, points):
    positions = np.array(points, dtype=np.float64)
    x_m, y_m = positions_from_pinn(positions, frame, size)
    back = positions_to_pinn(x_m, y_m, frame, size)
    np.testing.assert_allclose(back, positions, rtol=0, atol=1e-6)


@given(frame=frames, size=sizes, points=pixel_positions)
def test_metres_to_pixels_and_back(frame, size, points):
    pixels = np.array(points, dtype=np.float64)
    x_m = (pixels[:, 1] - 2000) * frame.pixel_width_m + frame.center_x_m
    y_m = (pixels[:, 0] - 2000) * frame.pixel_height_m + frame.center_y_m
    positions = positions_to_pinn(x_m, y_m, frame, size)
    x_back, y_back = positions_from_pinn(positions, frame, size)
    scale = max(frame.pixel_width_m, frame.pixel_height_m)
    np.testing.assert_allclose(x_back, x_m, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(y_back, y_m, rtol=0, atol=1e-6 * scale)


@given(frame=frames, size=sizes, points=pixel_positions)
def test_agrees_with_ptychodus_object_pixels_plus_the_window_offset(frame, size, points):
    """Ptychodus' own mapping (its ObjectGeometry) gives the object pixel under the probe's
    pixel (N-1)/2; pinn's position is that plus N//2 - (N-1)/2."""
    pixels = np.array(points, dtype=np.float64)
    x_m = (pixels[:, 1] - 100) * frame.pixel_width_m + frame.center_x_m
    y_m = (pixels[:, 0] - 100) * frame.pixel_height_m + frame.center_y_m
    sequence = ProbePositionSequence([ProbePosition(i, float(x), float(y))
                                      for i, (x, y) in enumerate(zip(x_m, y_m))])
    geometry = ObjectGeometry(width_px=frame.width_px, height_px=frame.height_px,
                              pixel_width_m=frame.pixel_width_m,
                              pixel_height_m=frame.pixel_height_m,
                              center_x_m=frame.center_x_m, center_y_m=frame.center_y_m)
    expected = np.stack([geometry.map_probe_positions_to_object_y_px(sequence),
                         geometry.map_probe_positions_to_object_x_px(sequence)], axis=1)
    expected = expected + (size // 2 - (size - 1) / 2)
    np.testing.assert_allclose(positions_to_pinn(x_m, y_m, frame, size), expected,
                               rtol=0, atol=1e-9)


def test_window_offset_is_half_a_pixel_for_even_sizes_only():
    assert [window_offset_px(n) for n in (1, 2, 3, 64, 65)] == [0.0, 0.5, 0.0, 0.5, 0.0]


def test_centre_of_the_object_maps_to_its_middle_pixel():
    frame = ObjectFrame(height_px=101, width_px=200, pixel_height_m=2e-9, pixel_width_m=1e-9,
                        center_y_m=5e-6, center_x_m=-3e-6)
    # (W-1)/2 = 99.5 and (H-1)/2 = 50 in Ptychodus, + 0.5 for a 64-pixel window
    np.testing.assert_array_equal(positions_to_pinn(np.array([-3e-6]), np.array([5e-6]), frame,
                                                    64), [[50.5, 100.0]])
    np.testing.assert_allclose(positions_to_pinn(np.array([-3e-6 + 1e-9]), np.array([5e-6]),
                                                 frame, 63), [[50.0, 100.5]], atol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"height_px": 0}, "height_px"),
    ({"width_px": 2.5}, "width_px"),
    ({"pixel_width_m": 0.0}, "pixel_width_m"),
    ({"pixel_height_m": float("nan")}, "pixel_height_m"),
    ({"center_x_m": float("inf")}, "center_x_m"),
])
def test_frame_refuses_bad_geometry(kwargs, match):
    args = {"height_px": 10, "width_px": 10, "pixel_height_m": 1e-9, "pixel_width_m": 1e-9}
    with pytest.raises(DataError, match=match):
        ObjectFrame(**{**args, **kwargs})


def test_refuses_bad_coordinates():
    frame = ObjectFrame(height_px=10, width_px=10, pixel_height_m=1e-9, pixel_width_m=1e-9)
    with pytest.raises(DataError, match="2 x coordinates but 3 y"):
        positions_to_pinn(np.zeros(2), np.zeros(3), frame, 4)
    with pytest.raises(DataError, match="NaN"):
        positions_to_pinn(np.array([np.nan]), np.zeros(1), frame, 4)
    with pytest.raises(DataError, match=r"\(M,\)"):
        positions_to_pinn(np.zeros((2, 2)), np.zeros((2, 2)), frame, 4)
    with pytest.raises(DataError, match=r"\(M, 2\)"):
        positions_from_pinn(np.zeros((3, 3)), frame, 4)
    with pytest.raises(DataError, match="finite"):
        positions_from_pinn(np.array([[0.0, np.inf]]), frame, 4)
    with pytest.raises(DataError, match="size_px"):
        positions_from_pinn(np.zeros((1, 2)), frame, 0)
