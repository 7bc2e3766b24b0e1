"""torch.ops.unlearn.codec_select (FOCI): parity, consistency, known truths, ties."""

from __future__ import annotations

import math

import pytest
import torch

import unlearn
from unlearn.ops import reference

op = torch.ops.unlearn.codec_select


def _assert_same(ours, twin):
    assert torch.equal(ours[0], twin[0])
    torch.testing.assert_close(ours[1], twin[1], rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("stop_early", [False, True])
@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_matches_twin_on_random_data(gen, dtype, stop_early, cache):
    n, p = 150, 12
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    y = (f[:, 3] * f[:, 5] + 0.3 * torch.randn(n, generator=gen, dtype=dtype)).double()
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    _assert_same(op(y, f, 6, stop_early, seed, cache), reference.codec_select(y, f, 6, stop_early, seed, cache))


@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_matches_twin_on_tied_data(gen, cache):
    f = torch.randint(0, 3, (120, 8), generator=gen).double()
    f[:, 6] = 1.0  # constant column
    f[60:] = f[:60]  # duplicated rows
    y = torch.randint(0, 4, (120,), generator=gen).double()
    for seed in (0, 5):
        _assert_same(op(y, f, 8, False, seed, cache), reference.codec_select(y, f, 8, False, seed, cache))


def test_scores_equal_codec_given_previous_picks(gen):
    f = torch.randn(400, 10, generator=gen, dtype=torch.float64)
    y = f[:, 0] + f[:, 1] ** 2 + 0.5 * torch.randn(400, generator=gen, dtype=torch.float64)
    order, scores = op(y, f, 5, False, 9)
    assert float(scores[0]) == float(torch.ops.unlearn.codec(y, f[:, order[:1]], None, 9))
    for k in range(1, 5):
        expected = torch.ops.unlearn.codec(y, f[:, order[k : k + 1]], f[:, order[:k]], 9)
        assert abs(float(scores[k]) - float(expected)) <= 1e-12


def test_foci_finds_the_markov_blanket(gen):
    n = 2000
    f = torch.randn(n, 53, generator=gen, dtype=torch.float64)
    y = f[:, 0] * f[:, 1] + torch.sin(f[:, 2]) + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    result = unlearn.foci(y, f)
    assert set(result.selected[:3]) == {0, 1, 2}, result
    assert len(result.selected) <= 5, result
    assert all(s > 0 for s in result.scores)


def test_stop_early_pads_and_max_select_caps(gen):
    f = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(300, generator=gen, dtype=torch.float64)  # pure noise
    order, scores = op(y, f, 6, True, 0)
    picked = int((order >= 0).sum())
    assert torch.all(order[picked:] == -1) and torch.isnan(scores[picked:]).all()
    assert torch.all(scores[:picked] > 0)
    order, _ = op(y, f, 2, False, 0)
    assert (order >= 0).all() and len(order) == 2


def test_ties_finite_seeded_and_seed_dependent(gen):
    f = torch.randint(0, 2, (500, 6), generator=gen).double()
    f[:, 4] = 0.0
    y = torch.randint(0, 3, (500,), generator=gen).double()
    runs = {}
    for seed in range(5):
        order, scores = op(y, f, 6, False, seed)
        assert torch.isfinite(scores).all()
        again = op(y, f, 6, False, seed)
        assert torch.equal(order, again[0]) and torch.equal(scores, again[1])
        runs[seed] = tuple(scores.tolist())
    assert len(set(runs.values())) > 1


def test_opcheck():
    f = torch.randn(30, 5, dtype=torch.float64)
    y = torch.randn(30, dtype=torch.float64)
    torch.library.opcheck(op, (y, f, 3, False, 1, 1 << 20))


def test_torch_compile_fullgraph():
    f = torch.randn(40, 5, dtype=torch.float64)
    y = f[:, 1] + 0.1 * torch.randn(40, dtype=torch.float64)

    @torch.compile(fullgraph=True)
    def f_select(y, f):
        order, scores = op(y, f, 3, False, 0, 1 << 30)
        return order, scores * 1

    got = f_select(y, f)
    _assert_same(got, op(y, f, 3, False, 0, 1 << 30))
    assert math.isfinite(float(got[1][0]))
