"""Grouping scan points into groups of ``C = gridsize**2`` neighbours (the model's channels).

Every scan point seeds one group by default (``G = M``), so no point is silently left out
(the reference trains on a random 512-point subset unless told otherwise). A group is its
seed plus ``C - 1`` points drawn at random from the seed's ``neighbors`` nearest other points,
in random order. The reference (docs/DESIGN.md §7.2) instead draws all C members from
the seed's ``K`` nearest neighbours *excluding* the seed; pinn includes the seed so that every
scan point belongs to at least one group (§8, deviation 8). Offsets follow pinn's sign:
position minus the group centroid (the reference's ``coords_relative`` is the opposite,
centroid minus position).

Repeated positions (repeated exposures, several scans over one grid) are legal: a point's twin
is simply its nearest neighbour at distance 0. A scan with fewer distinct positions than C is
refused, since then every group would stack patterns taken at fewer than C spots.

The nearest-neighbour search is exact and never builds an M x M matrix: points are binned
into cells and each seed is compared with the points of the cells around it, a block that
grows until it provably contains the seed's nearest neighbours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pinn.data import _checks
from pinn.errors import ConfigError, DataError

_MAX_PAIRS = 1 << 22  # largest (seeds x candidates) distance block
#: Larger coordinates are refused: their squared distances would lose all precision.
MAX_COORDINATE_PX = 2.0**53


@dataclass(frozen=True, eq=False)
class Groups:
    """G groups of C scan points each.

    - ``indices``: ``(G, C)`` int64, the member scan-point indices (channel c = member c).
    - ``offsets``: ``(G, C, 2)`` float64, ``(y, x)`` pixels, member position minus its group's
      centroid (pinn's sign; the reference's ``coords_relative`` is the negative).
    - ``centroids``: ``(G, 2)`` float64, ``(y, x)`` mean position of each group's members.
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    centroids: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def gridsize(self) -> int:
        """``sqrt(C)``, the model's gridsize."""
        return math.isqrt(int(self.indices.shape[1]))


def group_positions(
    positions: torch.Tensor,
    gridsize: int,
    *,
    neighbors: int = 4,
    seed: int = 0,
    n_groups: int | None = None,
) -> Groups:
    """Group scan positions into ``G`` groups of ``C = gridsize**2`` nearby points.

    Seeds: every point once, in order ``0..M-1`` (``G = M``) when ``n_groups`` is None. With
    ``n_groups < M``, a random subset of that many distinct points (sorted); with
    ``n_groups > M``, every point ``n_groups // M`` times plus a random subset for the rest,
    each group drawing its members independently.

    Members: gridsize 1: the seed alone. gridsize > 1: the seed plus ``C - 1`` points drawn
    without replacement from the seed's ``neighbors`` nearest *other* points (exact Euclidean
    distance, ties broken by the lower index), then the C members put in a random order. The
    seed is a member on purpose (a deliberate difference from the reference, which excludes
    it): every scan point then appears in at least one group.

    All randomness comes from a ``torch.Generator`` seeded with ``seed``: the same inputs and
    seed give identical groups; the global RNG is never touched.

    Args:
        positions: ``(M, 2)`` float ``(y, x)`` pixels (tensor or array).
        gridsize: positive int; ``C = gridsize**2`` members per group.
        neighbors: candidate pool size ``K >= C - 1`` (clamped to ``M - 1``; the reference's
            default is 4).
        seed: seed of the generator.
        n_groups: number of groups G (default M).

    Returns:
        Groups with ``indices (G, C)`` int64, ``offsets (G, C, 2)`` float64 =
        position - centroid, ``centroids (G, 2)`` float64.

    Raises:
        ConfigError: ``gridsize < 1``, ``neighbors < C - 1``, ``n_groups < 1``.
        DataError: positions not ``(M, 2)`` finite reals, beyond ``2**53`` pixels, fewer
            than C points, or fewer than C distinct positions (repeated positions are
            otherwise fine).
    """
    pos = _checks.as_tensor("positions", positions)
    _checks.check_real("positions", pos)
    if pos.dim() != 2 or pos.shape[1] != 2:
        raise DataError(f"positions has shape {tuple(pos.shape)}; expected (M, 2) as (y, x)")
    pos = pos.to(torch.float64)
    _checks.check_finite("positions", pos)
    if pos.numel() and float(pos.abs().max()) > MAX_COORDINATE_PX:
        raise DataError(f"positions reach {float(pos.abs().max()):.3g} pixels; positions are "
                        "object pixels, so the coordinates are in other units or broken "
                        "(convert them to pixels)")
    if isinstance(gridsize, bool) or int(gridsize) != gridsize or gridsize < 1:
        raise ConfigError(f"gridsize must be a positive int, got {gridsize!r}")
    c = int(gridsize) ** 2
    m = int(pos.shape[0])
    if m < c:
        raise DataError(f"positions has {m} scan point(s) but gridsize {gridsize} needs at least "
                        f"C = {c} per group; use a smaller gridsize or more scan points")
    if c > 1:
        distinct = int(torch.unique(pos, dim=0).shape[0])
        if distinct < c:
            raise DataError(f"positions has {m} scan points but only {distinct} distinct (y, x) "
                            f"position(s); gridsize {gridsize} groups C = {c} neighbouring "
                            "positions, so the groups would be degenerate. Check the "
                            "coordinates, or use gridsize 1")
    if c > 1 and (int(neighbors) != neighbors or neighbors < c - 1):
        raise ConfigError(f"neighbors={neighbors!r} is too small for gridsize {gridsize}: each "
                          f"group draws {c - 1} neighbours besides its seed; use neighbors >= "
                          f"{c - 1}")
    if n_groups is not None and (int(n_groups) != n_groups or n_groups < 1):
        raise ConfigError(f"n_groups must be a positive int or None, got {n_groups!r}")
    generator = torch.Generator().manual_seed(int(seed))

    seeds = _choose_seeds(m, m if n_groups is None else int(n_groups), generator)  # (G,)
    if c == 1:
        indices = seeds[:, None]  # (G, 1)
    else:
        k = min(int(neighbors), m - 1)
        unique, inverse = torch.unique(seeds, return_inverse=True)
        pool = nearest_neighbors(pos, unique, k)[inverse]  # (G, K)
        g = seeds.shape[0]
        pick = torch.rand(g, k, generator=generator).argsort(dim=1)[:, :c - 1]  # (G, C-1)
        members = torch.cat([seeds[:, None], pool.gather(1, pick)], dim=1)  # (G, C)
        order = torch.rand(g, c, generator=generator).argsort(dim=1)
        indices = members.gather(1, order)
    member_pos = pos[indices]  # (G, C, 2)
    centroids = member_pos.mean(dim=1)  # (G, 2)
    return Groups(indices=indices.contiguous(), offsets=member_pos - centroids[:, None],
                  centroids=centroids)


def _choose_seeds(m: int, n_groups: int, generator: torch.Generator) -> torch.Tensor:
    if n_groups == m:
        return torch.arange(m)
    if n_groups < m:
        return torch.randperm(m, generator=generator)[:n_groups].sort().values
    rest = torch.randperm(m, generator=generator)[:n_groups % m].sort().values
    return torch.cat([torch.arange(m).repeat(n_groups // m), rest])


def nearest_neighbors(positions: torch.Tensor, seeds: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` nearest other points of each seed, nearest first, ties by lower index.

    Exact, with bounded memory and no M x M matrix: points are binned into square cells of
    side ``h`` (about ``k + 1`` points per cell, judged from the central 98 % of the points in
    each axis; if far outliers would make the grid much larger than M cells, it spans only
    that central part and the outliers go to the edge cells), and each seed is compared with
    the points of the ``(2q + 1)**2`` cells around its own, starting at ``q = 1``. Cell indices are
    monotone in the coordinates, so any point outside that block is farther than ``q * h``: a
    seed whose k-th distance is <= ``q * h`` is exact, the others are redone with ``q``
    doubled, and once the block covers the grid or would hold as many candidates as there are
    points, the seed is compared with every point.

    Args:
        positions: ``(M, 2)`` float64, finite (validated by the caller).
        seeds: ``(S,)`` int64 indices into positions.
        k: ``1 <= k <= M - 1``.

    Returns:
        ``(S, k)`` int64 point indices.
    """
    m = positions.shape[0]
    span_q = torch.quantile(positions, torch.tensor([0.01, 0.99], dtype=positions.dtype), dim=0)
    extent = span_q[1] - span_q[0]  # (2,) robust to a few far outliers
    h = _cell_size(float(extent[0]), float(extent[1]), m, k)
    lo, hi = positions.min(dim=0).values, positions.max(dim=0).values
    shape = ((hi - lo) / h).floor().to(torch.int64) + 1  # (ny, nx)
    if int(shape[0]) * int(shape[1]) > 4 * m + 16:  # outliers would make the grid huge
        lo, shape = span_q[0], (extent / h).floor().to(torch.int64) + 1
    ny, nx = int(shape[0]), int(shape[1])
    cell = ((positions - lo) / h).floor().clamp(min=torch.zeros(2, dtype=positions.dtype),
                                                max=(shape - 1).to(positions.dtype))
    cell = cell.to(torch.int64)  # (M, 2)
    cell_id = cell[:, 0] * nx + cell[:, 1]  # (M,)
    order = torch.argsort(cell_id, stable=True)
    per_cell = torch.bincount(cell_id, minlength=ny * nx)
    first = per_cell.cumsum(0) - per_cell
    depth = int(per_cell.max())
    if ny * nx * depth > 16 * m + (1 << 16):
        depth = m  # very uneven density: compare with all points
    else:
        table = torch.full((ny * nx, depth), m, dtype=torch.int64)  # m marks an empty slot
        table[cell_id[order], torch.arange(m) - first[cell_id[order]]] = order
    inf = torch.full((1,), math.inf, dtype=positions.dtype)
    pad_y, pad_x = torch.cat([positions[:, 0], inf]), torch.cat([positions[:, 1], inf])

    result = torch.empty(seeds.shape[0], k, dtype=torch.int64)
    todo = torch.arange(seeds.shape[0])
    q = 1
    while todo.numel():
        span = torch.arange(-q, q + 1)
        width = span.numel()
        brute = width * width * depth >= m or q >= max(ny, nx)
        per_seed = m if brute else width * width * depth
        unresolved = []
        for part in todo.split(max(1, _MAX_PAIRS // per_seed)):
            s = seeds[part]
            if brute:
                cand = torch.arange(m).expand(s.numel(), m)  # (S, M)
            else:
                cy = cell[s, 0, None, None] + span[None, :, None]  # (S, w, 1)
                cx = cell[s, 1, None, None] + span[None, None, :]  # (S, 1, w)
                valid = (cy >= 0) & (cy < ny) & (cx >= 0) & (cx < nx)  # (S, w, w)
                ids = cy.clamp(0, ny - 1) * nx + cx.clamp(0, nx - 1)
                cand = table[ids].masked_fill(~valid[..., None], m).flatten(1)  # (S, w*w*depth)
                cand = cand.sort(dim=1).values  # ascending index, empty slots (m) last
            dist = (pad_y[cand] - pad_y[s, None]).square_()  # (S, Q) squared distances
            dist += (pad_x[cand] - pad_x[s, None]).square_()
            dist.masked_fill_(cand == s[:, None], math.inf)  # not its own neighbour
            found, kth = _k_smallest(cand, dist, k)
            result[part] = found
            ok = kth <= (q * h * (1.0 - 1e-9)) ** 2
            unresolved.append(part[~(ok | brute)])
        todo = torch.cat(unresolved)
        q *= 2
    return result


def _k_smallest(cand: torch.Tensor, dist: torch.Tensor, k: int):
    """The k candidates of smallest distance per row, nearest first, ties by lower index.

    cand: (S, Q) int64 sorted ascending per row; dist: (S, Q) float64 (inf = not a candidate).
    Returns ``(found (S, k) int64, kth (S,) float64)``, the k-th smallest distance (inf when a
    row has fewer than k finite candidates). O(Q) per row, no full sort.
    """
    kth = torch.kthvalue(dist, k, dim=1).values  # (S,)
    below = dist < kth[:, None]
    tied = dist == kth[:, None]
    room = k - below.sum(dim=1, keepdim=True)  # how many tied entries still fit
    keep = below | (tied & (tied.cumsum(dim=1) <= room))  # exactly k per row
    chosen = keep.nonzero()[:, 1].reshape(-1, k)  # (S, k) column indices in index order
    by_dist = torch.sort(dist.gather(1, chosen), dim=1, stable=True).indices
    return cand.gather(1, chosen.gather(1, by_dist)), kth


def _cell_size(extent_y: float, extent_x: float, m: int, k: int) -> float:
    """Cell side giving about ``k + 1`` points per occupied cell for a uniform scan."""
    along_line = max(extent_y, extent_x) * (k + 1) / m  # right when the scan is (nearly) a line
    over_area = math.sqrt(extent_y * extent_x * (k + 1) / m)
    h = max(along_line, over_area)
    return h if h > 0 else 1.0
