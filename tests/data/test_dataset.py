"""GroupDataset: items, scaling to photon units, attributes, memory sharing."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from pinn.data import GroupDataset, ScanData, group_positions
from pinn.errors import ConfigError, DataError


def counts_scan(m=30, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.rand(m, n, n, generator=g) * 50, generator=g)
    return ScanData(diffraction=counts.sqrt(),
                    positions=torch.rand(m, 2, generator=g, dtype=torch.float64) * 40,
                    probe=torch.randn(n, n, generator=g, dtype=torch.complex64), counts=True)


def test_item_shapes_dtypes_and_values():
    scan = counts_scan()
    groups = group_positions(scan.positions, 2)
    ds = GroupDataset(scan, groups, nphotons=1e6)
    assert len(ds) == 30 and ds.N == 16 and ds.gridsize == 2
    item = ds[7]
    assert set(item) == {"amplitude", "offsets", "index"}
    assert item["amplitude"].shape == (4, 16, 16) and item["amplitude"].dtype == torch.float32
    assert item["offsets"].shape == (4, 2) and item["offsets"].dtype == torch.float32
    assert item["index"].dtype == torch.int64 and int(item["index"]) == 7
    members = groups.indices[7]
    expected = (scan.diffraction[members] * ds.normalization) * ds.intensity_scale
    assert torch.equal(item["amplitude"], expected)
    assert torch.equal(item["offsets"], groups.offsets[7].float())
    centroid = scan.positions[members].mean(dim=0)
    torch.testing.assert_close(item["offsets"].double(), scan.positions[members] - centroid,
                               atol=1e-5, rtol=0)


def test_scale_constants_follow_the_reference():
    scan = counts_scan()
    groups = group_positions(scan.positions, 2, seed=3)
    ds = GroupDataset(scan, groups, nphotons=2.5e5)
    assert ds.nphotons == 2.5e5
    assert ds.intensity_scale == math.sqrt(2.5e5) / 8
    grouped = ds.amplitudes[groups.indices.flatten()].double()
    assert float(grouped.square().sum(dim=(-2, -1)).mean()) == pytest.approx(2.5e5, rel=1e-5)


def test_counts_data_default_dose_gives_sqrt_counts():
    scan = counts_scan()
    ds = GroupDataset(scan, group_positions(scan.positions, 2))
    grouped = scan.diffraction[ds.groups.indices.flatten()].double().square().sum((-2, -1))
    assert ds.nphotons == pytest.approx(float(grouped.mean()), rel=1e-12)
    torch.testing.assert_close(ds.amplitudes, scan.diffraction, rtol=3e-7, atol=0)


def test_amplitude_data_default_dose_is_1e9():
    scan = counts_scan()
    scan = ScanData(diffraction=scan.diffraction * 0.01, positions=scan.positions,
                    probe=scan.probe)
    ds = GroupDataset(scan, group_positions(scan.positions, 1))
    assert ds.nphotons == 1e9
    energy = ds.amplitudes.double().square().sum((-2, -1)).mean()
    assert float(energy) == pytest.approx(1e9, rel=1e-5)


def test_probe_is_the_raw_probe_and_amplitudes_are_stored_once():
    scan = counts_scan()
    ds = GroupDataset(scan, group_positions(scan.positions, 2, n_groups=200))
    assert torch.equal(ds.probe, scan.probe)
    assert ds.amplitudes.shape == scan.diffraction.shape  # (M, N, N), not (G*C, N, N)


def test_negative_index_and_out_of_range():
    scan = counts_scan()
    ds = GroupDataset(scan, group_positions(scan.positions, 1))
    assert int(ds[-1]["index"]) == 29
    with pytest.raises(IndexError):
        ds[30]


def test_dataloader_batches():
    scan = counts_scan()
    ds = GroupDataset(scan, group_positions(scan.positions, 2))
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["amplitude"].shape == (8, 4, 16, 16)
    assert batch["offsets"].shape == (8, 4, 2)
    assert batch["index"].tolist() == list(range(8))


def test_errors():
    scan = counts_scan()
    other = group_positions(torch.rand(50, 2, dtype=torch.float64), 1)
    with pytest.raises(DataError, match="scan has 30"):
        GroupDataset(scan, other)
    with pytest.raises(DataError, match="Groups"):
        GroupDataset(scan, "groups")
    with pytest.raises(ConfigError, match="nphotons"):
        GroupDataset(scan, group_positions(scan.positions, 1), nphotons=0)


def test_get_batch_equals_stacked_items():
    scan = counts_scan()
    ds = GroupDataset(scan, group_positions(scan.positions, 2))
    indices = torch.tensor([5, 0, 29, -1, 5])
    batch = ds.get_batch(indices)
    items = [ds[int(i)] for i in indices]
    for key in ("amplitude", "offsets", "index"):
        assert torch.equal(batch[key], torch.stack([item[key] for item in items]))
    assert batch["amplitude"].shape == (5, 4, 16, 16)
    assert batch["index"].tolist() == [5, 0, 29, 29, 5]
    with pytest.raises(IndexError):
        ds.get_batch(torch.tensor([0, 30]))
