"""ScanData: conversion to the canonical dtypes, validation, measured dose, selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pinn.data import ScanData
from pinn.errors import DataError


def make(m=5, n=8, **overrides):
    g = torch.Generator().manual_seed(3)
    fields = dict(
        diffraction=torch.rand(m, n, n, generator=g),
        positions=torch.rand(m, 2, generator=g, dtype=torch.float64) * 50,
        probe=torch.ones(n, n, dtype=torch.complex64),
    )
    fields.update(overrides)
    return ScanData(**fields)


def test_converts_to_canonical_dtypes_and_defaults():
    scan = ScanData(diffraction=np.ones((3, 4, 4), dtype=np.uint16),
                    positions=np.zeros((3, 2), dtype=np.float32),
                    probe=np.ones((4, 4)), object=np.ones((9, 7)))
    assert scan.diffraction.dtype == torch.float32
    assert scan.positions.dtype == torch.float64
    assert scan.probe.dtype == torch.complex64
    assert scan.object.dtype == torch.complex64 and scan.object.shape == (9, 7)
    assert scan.scan_index.dtype == torch.int64 and scan.scan_index.tolist() == [0, 0, 0]
    assert scan.positions_start is None and scan.counts is False
    assert scan.n_scans == 3 and scan.N == 4


def test_is_frozen():
    scan = make()
    with pytest.raises(AttributeError):
        scan.counts = True


@pytest.mark.parametrize("field, value, words", [
    ("diffraction", torch.ones(4, 8), "diffraction"),
    ("diffraction", torch.ones(5, 8, 6), "diffraction"),
    ("diffraction", torch.ones(0, 8, 8), "empty"),
    ("diffraction", torch.ones(5, 8, 8, dtype=torch.complex64), "complex"),
    ("diffraction", torch.full((5, 8, 8), float("nan")), "NaN"),
    ("diffraction", -torch.ones(5, 8, 8), "negative"),
    ("positions", torch.zeros(5, 3), "positions"),
    ("positions", torch.zeros(4, 2), "positions"),
    ("positions", torch.tensor([[float("inf"), 0.0]] * 5), "positions"),
    ("probe", torch.ones(7, 7, dtype=torch.complex64), "probe"),
    ("probe", torch.full((8, 8), float("nan")), "probe"),
    ("probe", torch.ones(0, 8, 8), r"probe has shape \(0, 8, 8\).*K >= 1"),
    ("probe", torch.ones(2, 7, 7), r"probe has shape \(2, 7, 7\); expected \(N, N\) = \(8, 8\)"),
    ("probe", torch.ones(1, 2, 8, 8), "probe has shape"),
    ("object", torch.ones(3, 4, 5), "object"),
    ("scan_index", torch.zeros(4, dtype=torch.int64), "scan_index"),
    ("scan_index", torch.tensor([0.5] * 5), "scan_index"),
    ("positions_start", torch.zeros(5, 1), "positions_start"),
    ("counts", 1, "counts"),
    ("diffraction", np.array([["a"]]), "diffraction"),
])
def test_validation_names_the_field(field, value, words):
    with pytest.raises(DataError, match=words):
        make(**{field: value})


def test_measured_nphotons_is_mean_total_count():
    counts = torch.tensor([[[4.0, 0.0], [1.0, 0.0]], [[9.0, 9.0], [1.0, 1.0]]])  # totals 5, 20
    scan = make(m=2, n=2, diffraction=counts.sqrt(), counts=True)
    assert scan.measured_nphotons == pytest.approx(12.5, rel=1e-6)
    assert make(m=2, n=2, diffraction=counts.sqrt()).measured_nphotons is None


def test_select_keeps_rows_in_order():
    scan = make(m=6, scan_index=torch.arange(6), positions_start=torch.zeros(6, 2),
                object=torch.ones(20, 20))
    sub = scan.select([4, 1])
    assert torch.equal(sub.diffraction, scan.diffraction[[4, 1]])
    assert torch.equal(sub.positions, scan.positions[[4, 1]])
    assert sub.scan_index.tolist() == [4, 1]
    assert sub.object.data_ptr() == scan.object.data_ptr()  # shared, not copied
    mask = torch.tensor([True, False, False, False, False, True])
    assert scan.select(mask).scan_index.tolist() == [0, 5]
    with pytest.raises(DataError, match="select"):
        scan.select([6])
    with pytest.raises(DataError, match="select"):
        scan.select([])


def test_repr_is_short():
    text = repr(make(object=torch.ones(20, 30)))
    assert text == ("ScanData(M=5, N=8, counts=False, object=(20, 30), positions_start=False)")


def test_probe_modes_are_kept_and_one_mode_keeps_its_shape():
    g = torch.Generator().manual_seed(4)
    modes = torch.randn(3, 8, 8, generator=g, dtype=torch.complex128)
    modes[1] *= 3  # the strongest mode need not be the first
    scan = make(probe=modes)
    assert scan.probe.shape == (3, 8, 8) and scan.probe.dtype == torch.complex64
    assert torch.equal(scan.probe_modes, scan.probe)
    assert torch.equal(scan.dominant_probe, scan.probe[1])
    single = make()
    assert single.probe.shape == (8, 8)  # (N, N) stays (N, N)
    assert single.probe_modes.shape == (1, 8, 8)
    assert torch.equal(single.probe_modes[0], single.probe)
    assert torch.equal(single.dominant_probe, single.probe)
    assert make(probe=torch.ones(1, 8, 8)).probe.shape == (1, 8, 8)  # as given
    assert torch.equal(scan.select([0, 2]).probe, scan.probe)


def test_probe_error_is_one_line():
    with pytest.raises(DataError) as info:
        make(probe=torch.ones(4, 6, 6))
    assert "\n" not in str(info.value)
