"""torch.ops.unlearn.codec_select (FOCI): parity, consistency, known truths, ties,
bad input, and on every device against the CPU kernel and the twin."""

from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np
import pytest
import torch

import unlearn
from tests.devices import cuda_only, on_devices
from tests.ops.helpers import DTYPES, TOL, assert_too_many_rows_refused, draw_seed, integer_points, with_nan
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
    seed = draw_seed(gen)
    _assert_same(op(y, f, 6, stop_early, seed, cache), reference.codec_select(y, f, 6, stop_early, seed, cache))


@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_matches_twin_on_tied_data(gen, cache):
    f = torch.randint(0, 3, (120, 8), generator=gen).double()
    f[:, 6] = 1.0  # constant column
    f[60:] = f[:60]  # duplicated rows
    y = torch.randint(0, 4, (120,), generator=gen).double()
    for seed in (0, 5):
        _assert_same(op(y, f, 8, False, seed, cache), reference.codec_select(y, f, 8, False, seed, cache))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_matches_twin_with_many_columns(gen, dtype, tied, cache):
    """Many candidates a step (the property tests draw a few), n > 129 so the
    CPU row scans go tier by tier."""
    n, p = 200, 150
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    if tied:
        f = f.round()
    y = (f[:, 70] * f[:, 140] + f[:, 3] + 0.3 * torch.randn(n, generator=gen, dtype=dtype)).double()
    seed = draw_seed(gen)
    _assert_same(op(y, f, 4, False, seed, cache), reference.codec_select(y, f, 4, False, seed, cache))


def test_scores_equal_codec_given_previous_picks(gen):
    f = torch.randn(400, 10, generator=gen, dtype=torch.float64)
    y = f[:, 0] + f[:, 1] ** 2 + 0.5 * torch.randn(400, generator=gen, dtype=torch.float64)
    order, scores = op(y, f, 5, False, 9)
    assert float(scores[0]) == float(torch.ops.unlearn.codec(y, f[:, order[:1]], None, 9))
    for k in range(1, 5):
        expected = torch.ops.unlearn.codec(y, f[:, order[k : k + 1]], f[:, order[:k]], 9)
        assert abs(float(scores[k]) - float(expected)) <= 1e-12


def test_foci_finds_the_markov_blanket(gen):
    n = 4000
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


@on_devices
def test_opcheck(device):
    f = torch.randn(30, 5, dtype=torch.float64, device=device)
    y = torch.randn(30, dtype=torch.float64, device=device)
    torch.library.opcheck(op, (y, f, 3, False, 1, 1 << 20))
    y = torch.randn(50, dtype=torch.float64, device=device)[:30]  # a view into a longer vector
    torch.library.opcheck(op, (y, f, 3, False, 1, 1 << 20))
    torch.library.opcheck(op, (y, f, 3, False, 1, 0))


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


# Bad input raises ValueError naming the argument, in the wrapper, the compiled op and the twin alike.

f64 = torch.float64
Y = torch.randn(20, dtype=f64)
F = torch.randn(20, 4, dtype=f64)
SELECT_CASES = {
    "mismatched lengths": (Y[:10], F, 2, "y"),
    "one row": (Y[:1], F[:1], 1, "features"),
    "nan in features": (Y, with_nan(F), 2, "features"),
    "nan in y": (with_nan(Y), F, 2, "y"),
    "constant y": (torch.zeros(20, dtype=f64), F, 2, "y"),
    "integer features": (Y, torch.randint(0, 5, (20, 4)), 2, "features"),
    "1-d features in op": (Y, F[:, 0], 1, "features"),
    "max_select zero": (Y, F, 0, "max_select"),
    "max_select above p": (Y, F, 5, "max_select"),
}


@pytest.mark.parametrize("case", SELECT_CASES)
@pytest.mark.parametrize("impl", ["op", "twin"])
def test_op_errors(case, impl):
    y, f, k, name = SELECT_CASES[case]
    fn = op if impl == "op" else reference.codec_select
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(y, f, k, True, 0, 1 << 30)


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_int_arguments_at_the_int64_edges(impl):
    fn = op if impl == "op" else reference.codec_select
    for max_select in (2**63 - 1, -(2**63), -1):
        with pytest.raises(ValueError, match=r"codec_select: max_select must be between 1 and the number of columns"):
            fn(Y, F, max_select, True, 0, 1 << 30)
    with pytest.raises(ValueError, match=r"codec_select: max_cache_bytes must be >= 0, got -9223372036854775808"):
        fn(Y, F, 2, True, 0, -(2**63))
    # The largest cache budget and extreme seeds are valid: the same picks as the twin.
    for seed, budget in ((2**63 - 1, 2**63 - 1), (-(2**63), 0)):
        _assert_same(fn(Y, F, 3, False, seed, budget), reference.codec_select(Y, F, 3, False, seed, budget))


@pytest.mark.parametrize(
    "name, value",
    [("max_select", 2**64), ("seed", 2**63), ("seed", -(2**63) - 1), ("max_cache_bytes", 2**63)],
)
def test_wrapper_refuses_ints_beyond_int64(name, value):
    kwargs = {"max_select": 2, "seed": 0, "max_cache_bytes": 1 << 30, name: value}
    with pytest.raises(ValueError, match=rf"codec_select: {name} must fit in int64"):
        unlearn.ops.codec_select(
            Y, F, kwargs["max_select"], seed=kwargs["seed"], max_cache_bytes=kwargs["max_cache_bytes"]
        )


def test_refuses_more_rows_than_exact_sums_allow():
    assert_too_many_rows_refused("codec_select", [("(y, points, 1, True, 0, 0)", "features")])


def _exact_first_score_of_squares(n: int) -> float:
    """T(y, f) for f = (0, 1, 4, ..., (n-1)^2) in any order and y = f: every
    point's nearest neighbour is the next smaller one (the first's the second)."""
    sum_l2 = n * (n + 1) * (2 * n + 1) // 6
    num = n * (n * (n + 1) // 2 - (n - 1)) - sum_l2
    return float(num) / float(n * n * (n + 1) // 2 - sum_l2)


def _squares(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(n)).double().square()[:, None]


@pytest.mark.parametrize("n", [2, 3, 10, 500])
def test_first_score_is_exact_on_squares(n):
    f = _squares(n)
    want = _exact_first_score_of_squares(n)
    for fn in (op, reference.codec_select):
        assert float(fn(f[:, 0], f, 1, False, 0, 1 << 30)[1][0]) == want


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("UNLEARN_SLOW_TESTS") != "1", reason="set UNLEARN_SLOW_TESTS=1 to run")
def test_first_score_exact_at_four_million_rows():
    """n = 4e6: the first step's sums (near 1e19) pass int64; the score is exact and below 1."""
    n = 4_000_000
    f = _squares(n)
    score = float(op(f[:, 0], f, 1, False, 0, 1 << 30)[1][0])
    assert score == _exact_first_score_of_squares(n) and score < 1


@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_distances_past_the_dtype_match_twin(gen, cache):
    """float32 columns whose squared gaps all overflow to inf: ties among the
    other points in the kernel and the twin alike (never the point itself)."""
    n, p = 30, 4
    f = (torch.randperm(n * p, generator=gen).float().view(n, p) - n * p / 2) * 1e20
    y = torch.randn(n, generator=gen)
    for seed in range(4):
        _assert_same(op(y, f, 3, False, seed, cache), reference.codec_select(y, f, 3, False, seed, cache))


@cuda_only
def test_cuda_row_limit_is_a_value_error():
    n = 65535 * 32 + 1  # one row past the CUDA kernel's grid
    y = torch.randn(n, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match=r"codec_select: features has 2097121 rows, but the CUDA kernel takes at most"):
        op(y, y[:, None], 1, False, 0, 0)


@pytest.mark.parametrize("case", [c for c in SELECT_CASES if c != "1-d features in op"])
def test_foci_wrapper_errors(case):
    y, f, k, name = SELECT_CASES[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        unlearn.foci(y, f, max_select=k)


def test_foci_rejects_non_integer_max_select_and_other_types():
    with pytest.raises(TypeError, match="max_select"):
        unlearn.foci(Y, F, max_select=2.5)
    with pytest.raises(TypeError, match="features"):
        unlearn.foci(Y, F.tolist())
    with pytest.raises(ValueError, match="features"):
        unlearn.foci(Y.numpy(), np.arange(80).reshape(20, 4))


# On every device, against the CPU kernel and the twin ----------------------------------------


def _assert_same_on_device(out, cpu, device, dtype):
    order, scores = out
    assert order.device.type == device and scores.device.type == device
    assert order.dtype == torch.int64 and scores.dtype == dtype
    assert torch.equal(order.cpu(), cpu[0])
    torch.testing.assert_close(scores.cpu(), cpu[1], rtol=0, atol=TOL[dtype], equal_nan=True)


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache", [1 << 30, 0])
# p = 256 fills whole candidate blocks, so column p and its padding get a block of their own.
@pytest.mark.parametrize("n, p", [(2, 1), (2, 3), (45, 7), (120, 8), (97, 130), (64, 256), (64, 257)])
def test_identical_on_integer_data(gen, device, dtype, cache, n, p):
    f = integer_points(gen, n, p, dtype, high=3)
    if p > 2:
        f[:, 1] = 1.0  # constant column
    if n > 4:
        f[n // 2 :] = f[: n - n // 2].clone()  # duplicated rows
    y = torch.randint(0, 4, (n,), generator=gen).to(dtype)
    y[0], y[1] = 0, 1
    k = min(p, 6)
    for seed in (0, draw_seed(gen)):
        out = op(y.to(device), f.to(device), k, False, seed, cache)
        _assert_same_on_device(out, op(y, f, k, False, seed, cache), device, dtype)
        if n * p <= 3000:
            _assert_same_on_device(out, reference.codec_select(y, f, k, False, seed, cache), device, dtype)


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stop_early", [False, True])
@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_matches_on_random_data(gen, device, dtype, stop_early, cache):
    n, p = 150, 12
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    y = (f[:, 3] * f[:, 5] + 0.3 * torch.randn(n, generator=gen, dtype=dtype)).to(dtype)
    seed = draw_seed(gen)
    out = op(y.to(device), f.to(device), 6, stop_early, seed, cache)
    _assert_same_on_device(out, reference.codec_select(y, f, 6, stop_early, seed, cache), device, dtype)
    _assert_same_on_device(out, op(y, f, 6, stop_early, seed, cache), device, dtype)


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_cpu_at_scale(gen, device, dtype):
    n, p = 1500, 300
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    y = f[:, 7] + f[:, 100] ** 2 + torch.sin(3 * f[:, 250]) + 0.2 * torch.randn(n, generator=gen, dtype=dtype)
    out = op(y.to(device), f.to(device), 8, False, 4, 1 << 30)
    _assert_same_on_device(out, op(y, f, 8, False, 4, 1 << 30), device, dtype)
    # The recomputed tiles give the very same result as the cache.
    again = op(y.to(device), f.to(device), 8, False, 4, 0)
    assert torch.equal(out[0], again[0]) and torch.equal(out[1], again[1])


@on_devices
def test_stop_early_padding_matches_cpu(gen, device):
    f = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(300, generator=gen, dtype=torch.float64)
    order, scores = op(y.to(device), f.to(device), 6, True, 0, 1 << 30)
    cpu = op(y, f, 6, True, 0, 1 << 30)
    _assert_same_on_device((order, scores), cpu, device, torch.float64)
    picked = int((order >= 0).sum())
    assert torch.all(order[picked:] == -1) and torch.isnan(scores[picked:]).all()


@on_devices
def test_stops_when_y_is_determined(device):
    # y is a function of column 0 alone: after picking it every neighbour has the same rank.
    f = torch.tensor([[0.0, 5.0], [0.0, 1.0], [1.0, 2.0], [1.0, 7.0], [2.0, 3.0], [2.0, 0.0]])
    y = f[:, 0].clone()
    out = op(y.to(device), f.to(device), 2, False, 0, 1 << 30)
    _assert_same_on_device(out, op(y, f, 2, False, 0, 1 << 30), device, torch.float32)


@contextlib.contextmanager
def _warn_always():
    """torch's once-per-process warnings raised on every occurrence."""
    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        yield
    finally:
        torch.set_warn_always(before)


def test_any_layout_gives_the_same_picks(gen):
    f = torch.randn(5, 60, generator=gen, dtype=torch.float64).t()  # column-major
    y = torch.stack([f[:, 1] + 0.1 * f[:, 3], f[:, 0]], dim=1)[:, 0]  # strided
    want = op(y.contiguous(), f.contiguous(), 3, False, 1, 1 << 30)
    for cache in (1 << 30, 0):
        _assert_same(op(y, f, 3, False, 1, cache), want)
    with warnings.catch_warnings(), _warn_always():
        warnings.simplefilter("error")  # the twin reads a strided response without torch's copy warning
        _assert_same(reference.codec_select(y, f, 3, False, 1, 0), want)
