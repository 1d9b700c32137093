"""Grouping: signs, membership, coverage, determinism, and exact nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from pinn.data import group_positions
from pinn.data.grouping import nearest_neighbors
from pinn.errors import ConfigError, DataError


def raster(rows=6, cols=7, step=6.0):
    yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([yy.flatten(), xx.flatten()], dim=1).to(torch.float64) * step


def random_positions(m=300, seed=0, scale=100.0):
    return torch.rand(m, 2, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64) * scale


def brute_knn_distances(pos, k):
    d = torch.cdist(pos, pos).square()
    d.fill_diagonal_(float("inf"))
    return torch.sort(d, dim=1).values[:, :k]


def test_gridsize_one_is_every_point_alone():
    pos = random_positions(50)
    groups = group_positions(pos, 1)
    assert groups.indices.shape == (50, 1) and groups.indices.dtype == torch.int64
    assert groups.indices[:, 0].tolist() == list(range(50))
    assert torch.equal(groups.centroids, pos)
    assert torch.all(groups.offsets == 0)
    assert groups.gridsize == 1 and len(groups) == 50


def test_offsets_are_position_minus_centroid():
    pos = raster()
    groups = group_positions(pos, 2)
    member = pos[groups.indices]  # (G, 4, 2)
    assert groups.offsets.dtype == torch.float64 and groups.centroids.dtype == torch.float64
    torch.testing.assert_close(groups.centroids, member.mean(dim=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(groups.offsets, member - groups.centroids[:, None], rtol=0,
                               atol=0)
    torch.testing.assert_close(groups.offsets.sum(dim=1),
                               torch.zeros(len(groups), 2, dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_explicit_sign_on_a_hand_made_group():
    pos = torch.tensor([[0.0, 0.0], [0.0, 6.0], [6.0, 0.0], [6.0, 6.0]], dtype=torch.float64)
    groups = group_positions(pos, 2, neighbors=3)
    for g in range(4):
        for c in range(4):
            member = int(groups.indices[g, c])
            expected = pos[member] - torch.tensor([3.0, 3.0], dtype=torch.float64)
            assert torch.equal(groups.offsets[g, c], expected)


def test_seed_is_a_member_and_every_point_is_used():
    pos = random_positions(200)
    groups = group_positions(pos, 2)
    assert groups.indices.shape == (200, 4)
    for g in range(200):
        assert g in groups.indices[g].tolist()
    assert set(groups.indices.flatten().tolist()) == set(range(200))
    assert all(len(set(row)) == 4 for row in groups.indices.tolist())


def test_members_are_among_the_seed_nearest_neighbours():
    pos = random_positions(300)
    k = 6
    groups = group_positions(pos, 2, neighbors=k)
    kth = brute_knn_distances(pos, k)[:, -1]
    for g in range(300):
        others = [i for i in groups.indices[g].tolist() if i != g]
        d = (pos[others] - pos[g]).square().sum(dim=1)
        assert torch.all(d <= kth[g] + 1e-9)


def test_channel_order_is_random_but_seed_is_not_always_first():
    groups = group_positions(random_positions(200), 2)
    seed_first = (groups.indices[:, 0] == torch.arange(200)).float().mean()
    assert 0.1 < float(seed_first) < 0.5  # about 1/4


def test_same_seed_same_groups_other_seed_other_groups():
    pos = random_positions(200)
    a = group_positions(pos, 3, neighbors=12, seed=5)
    b = group_positions(pos, 3, neighbors=12, seed=5)
    c = group_positions(pos, 3, neighbors=12, seed=6)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.offsets, b.offsets)
    assert not torch.equal(a.indices, c.indices)


def test_global_rng_is_untouched():
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    group_positions(random_positions(100), 2, n_groups=50)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_fewer_groups_are_a_seeded_subset_of_distinct_seeds():
    pos = random_positions(100)
    groups = group_positions(pos, 1, n_groups=30, seed=2)
    seeds = groups.indices[:, 0].tolist()
    assert len(seeds) == 30 and len(set(seeds)) == 30 and seeds == sorted(seeds)
    again = group_positions(pos, 1, n_groups=30, seed=2)
    assert torch.equal(groups.indices, again.indices)
    assert not torch.equal(groups.indices, group_positions(pos, 1, n_groups=30, seed=3).indices)


def test_more_groups_than_points_cover_every_point():
    pos = random_positions(40)
    groups = group_positions(pos, 2, n_groups=100)
    assert groups.indices.shape == (100, 4)
    assert set(groups.indices.flatten().tolist()) == set(range(40))


def test_neighbors_clamped_to_the_number_of_other_points():
    pos = random_positions(4)
    groups = group_positions(pos, 2, neighbors=10)
    for g in range(4):
        assert sorted(groups.indices[g].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(gridsize=0), ConfigError, "gridsize"),
    (dict(gridsize=1.5), ConfigError, "gridsize"),
    (dict(gridsize=2, neighbors=2), ConfigError, "neighbors >= 3"),
    (dict(gridsize=1, n_groups=0), ConfigError, "n_groups"),
    (dict(gridsize=4), DataError, "at least C = 16"),
])
def test_invalid_requests(kwargs, error, words):
    with pytest.raises(error, match=words):
        group_positions(random_positions(10), **kwargs)


def test_repeated_positions_group_with_their_twins():
    pos = raster(4, 4).repeat_interleave(2, dim=0)  # every position measured twice
    groups = group_positions(pos, 2)
    for seed in range(len(pos)):  # the twin is the nearest neighbour, at distance 0
        assert nearest_neighbors(pos, torch.tensor([seed]), 1)[0, 0] == seed ^ 1
    assert set(groups.indices.flatten().tolist()) == set(range(len(pos)))


def test_fewer_distinct_positions_than_a_group_needs():
    pos = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 1.0]]).repeat(4, 1)  # 12 points, 3 spots
    assert len(group_positions(pos, 1)) == 12
    with pytest.raises(DataError, match="12 scan points but only 3 distinct.*gridsize 2"):
        group_positions(pos, 2)


@pytest.mark.parametrize("pos, words", [
    (torch.tensor([[0.0, 1e300], [1.0, 2.0], [3.0, 1.0], [5.0, 5.0]], dtype=torch.float64),
     "reach 1e[+]300 pixels"),
    (torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [-2.0**54, 5.0]]), "other units"),
    (torch.zeros(10, 3), "positions"),
    (torch.tensor([[float("nan"), 0.0]] * 10), "NaN"),
])
def test_invalid_positions(pos, words):
    with pytest.raises(DataError, match=words):
        group_positions(pos, 1)


@pytest.mark.parametrize("kind", ["uniform", "raster", "line", "duplicates", "outlier",
                                  "anisotropic"])
def test_nearest_neighbors_match_brute_force(kind):
    g = torch.Generator().manual_seed(7)
    m = 400
    if kind == "uniform":
        pos = torch.rand(m, 2, generator=g, dtype=torch.float64) * 500
    elif kind == "raster":
        pos = raster(20, 20)
    elif kind == "line":
        pos = torch.stack([torch.zeros(m, dtype=torch.float64),
                           torch.rand(m, generator=g, dtype=torch.float64)], dim=1)
    elif kind == "duplicates":
        pos = torch.randint(0, 4, (m, 2), generator=g).to(torch.float64)
    elif kind == "outlier":
        pos = torch.rand(m, 2, generator=g, dtype=torch.float64)
        pos[0] = 1e6
    else:  # a fly scan: rows 6.7 px apart, 66 px steps along a row
        pos = raster(20, 20) * torch.tensor([6.7 / 6, 66 / 6], dtype=torch.float64)
        pos = pos + torch.rand(pos.shape, generator=g, dtype=torch.float64)
    k = 7
    nn = nearest_neighbors(pos, torch.arange(pos.shape[0]), k)
    d = torch.cdist(pos, pos).square()
    d.fill_diagonal_(float("inf"))
    got = d.gather(1, nn)
    torch.testing.assert_close(got, brute_knn_distances(pos, k), rtol=1e-12, atol=1e-12)
    assert torch.all(got[:, 1:] >= got[:, :-1])  # nearest first
    assert torch.all(nn != torch.arange(pos.shape[0])[:, None])


def test_ties_go_to_the_lower_index():
    pos = raster(5, 5)  # the centre point has 4 neighbours at the same distance
    nn = nearest_neighbors(pos, torch.tensor([12]), 2)
    assert nn.tolist() == [[7, 11]]


@given(st.integers(2, 60), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.floats(1e-3, 1e4))
def test_nearest_neighbors_property(m, k, seed, scale):
    k = min(k, m - 1)
    pos = torch.rand(m, 2, generator=torch.Generator().manual_seed(seed),
                     dtype=torch.float64) * scale
    nn = nearest_neighbors(pos, torch.arange(m), k)
    d = torch.cdist(pos, pos).square()
    d.fill_diagonal_(float("inf"))
    torch.testing.assert_close(d.gather(1, nn), brute_knn_distances(pos, k))


def test_large_scan_groups_quickly():
    pos = random_positions(20000, scale=1500.0)
    groups = group_positions(pos, 2)
    assert groups.indices.shape == (20000, 4)
    sample = torch.arange(0, 20000, 997)
    d = torch.cdist(pos[sample], pos).square()
    d[torch.arange(sample.numel()), sample] = float("inf")
    kth = torch.sort(d, dim=1).values[:, 3]
    for row, g in enumerate(sample.tolist()):
        others = [i for i in groups.indices[g].tolist() if i != g]
        assert torch.all((pos[others] - pos[g]).square().sum(1) <= kth[row] + 1e-9)
