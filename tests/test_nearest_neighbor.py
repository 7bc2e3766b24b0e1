"""torch.ops.unlearn.nearest_neighbor against its twin, scipy, and known ties."""

from __future__ import annotations

import pytest
import torch
from scipy.spatial import cKDTree

from unlearn.ops import reference

op = torch.ops.unlearn.nearest_neighbor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d", [(2, 1), (7, 3), (300, 1), (1000, 3), (1000, 8), (500, 20), (200, 300)])
def test_matches_twin_on_random_points(gen, dtype, n, d):
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    assert torch.equal(op(x, seed), reference.nearest_neighbor(x, seed))


@pytest.mark.parametrize("n, d", [(2000, 2), (600, 12)])
def test_matches_twin_on_tied_integer_points(gen, n, d):
    x = torch.randint(0, 4, (n, d), generator=gen).double()
    for seed in (0, 1, 12345):
        assert torch.equal(op(x, seed), reference.nearest_neighbor(x, seed))


def test_matches_kdtree_at_large_n(gen):
    x = torch.rand(100_000, 3, generator=gen, dtype=torch.float64)
    _, idx = cKDTree(x.numpy()).query(x.numpy(), k=2)
    ours = op(x, 0)
    assert (ours != torch.arange(len(x))).all()
    assert torch.equal(ours, torch.from_numpy(idx[:, 1]))


def test_never_returns_self_and_is_nearest(gen):
    x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    nn = op(x, 3)
    dist = torch.cdist(x, x).fill_diagonal_(float("inf"))
    assert (nn != torch.arange(400)).all()
    torch.testing.assert_close(dist[torch.arange(400), nn], dist.min(dim=1).values)


def test_duplicates_pick_a_copy_at_random_by_seed():
    base = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = base.repeat_interleave(4, dim=0)  # 3 groups of 4 identical rows, n < tree threshold
    x_big = torch.cat([x, 100 + torch.arange(400, dtype=torch.float64)[:, None].expand(400, 2)])  # tree path
    for points in (x, x_big):
        first = op(points, 0)
        assert ((first[:12] // 4) == torch.arange(12) // 4).all()  # a copy of itself
        assert torch.equal(first, op(points, 0))
        picks = torch.stack([op(points, s)[0] for s in range(300)])
        counts = torch.bincount(picks, minlength=4)[1:4]
        assert counts.min() > 60, counts  # uniform over the 3 other copies


def test_opcheck():
    x = torch.randn(50, 3, dtype=torch.float64)
    torch.library.opcheck(op, (x, 7))
