"""torch.ops.unlearn.codec: parity with its twin, known truths, ties, tracing,
bad input, and on every device against the CPU kernel and the twin."""

from __future__ import annotations

import math
import os
import random

import pytest
import torch

import unlearn
from tests.devices import on_devices
from tests.ops.helpers import DTYPES, TOL, assert_too_many_rows_refused, draw_seed, integer_points, with_inf, with_nan
from unlearn.ops import reference

op = torch.ops.unlearn.codec


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, q, p", [(2, 1, 0), (300, 1, 0), (1000, 2, 1), (800, 3, 4), (400, 12, 3)])
def test_matches_twin(gen, dtype, n, q, p):
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    z = torch.randn(n, q, generator=gen, dtype=dtype)
    x = torch.randn(n, p, generator=gen, dtype=dtype) if p else None
    seed = draw_seed(gen)
    ours, twin = op(y, z, x, seed), reference.codec(y, z, x, seed)
    assert ours.dtype == dtype and ours.dim() == 0
    assert abs(float(ours) - float(twin)) <= 1e-9


def test_independent_gives_zero(gen):
    y = torch.randn(5000, generator=gen, dtype=torch.float64)
    z = torch.randn(5000, 2, generator=gen, dtype=torch.float64)
    assert abs(unlearn.codec(y, z, seed=1)) < 0.08


def test_conditionally_independent_gives_zero(gen):
    x = torch.randn(5000, generator=gen, dtype=torch.float64)
    y = x + 0.5 * torch.randn(5000, generator=gen, dtype=torch.float64)
    z = x + 0.5 * torch.randn(5000, generator=gen, dtype=torch.float64)
    assert unlearn.codec(y, z) > 0.2  # dependent without x ...
    assert abs(unlearn.codec(y, z, x)) < 0.12  # ... independent given x


def test_function_of_z_gives_one(gen):
    z = torch.randn(5000, generator=gen, dtype=torch.float64)
    assert unlearn.codec(torch.cos(3 * z), z) > 0.95


def test_function_given_x_gives_one(gen):
    x = torch.randn(5000, generator=gen, dtype=torch.float64)
    z = torch.randn(5000, generator=gen, dtype=torch.float64)
    assert unlearn.codec(x * z, z, x) > 0.8


def test_y_determined_by_neighbours_in_x_gives_one():
    y = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    x = y[:, None].clone()  # each point's x-neighbour is its twin: denominator 0
    z = torch.tensor([[3.0], [1.0], [2.0], [0.0]], dtype=torch.float64)
    assert float(op(y, z, x, 0)) == 1.0 == float(reference.codec(y, z, x, 0))


def test_ties_are_finite_seeded_and_seed_dependent(gen):
    y = torch.randint(0, 3, (600,), generator=gen).double()
    z = torch.randint(0, 2, (600, 2), generator=gen).double()  # many duplicate rows
    x = torch.zeros(600, 1, dtype=torch.float64)  # a constant column
    values = {}
    for seed in range(6):
        t = float(op(y, z, x, seed))
        assert math.isfinite(t)
        assert t == float(op(y, z, x, seed)) == float(reference.codec(y, z, x, seed))
        values[seed] = t
    assert len(set(values.values())) > 1  # ties decide, so seeds differ


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranks_of_tied_signed_zero_and_wide_responses_match_twin(gen, dtype):
    """The CPU ranks (a radix sort of the values' bits) against the twin's
    sort and binary searches: ties, -0.0 beside +0.0 (equal values, one
    group), negative values, and magnitudes from 2^-60 to 2^60."""
    n = 3000
    z = torch.randn(n, 2, generator=gen, dtype=dtype)
    tied = torch.randint(-3, 4, (n,), generator=gen).to(dtype)
    tied[::7] = -0.0
    wide = torch.randn(n, generator=gen, dtype=torch.float64) * torch.exp2(torch.randint(-60, 61, (n,), generator=gen))
    wide[1::11] = wide[::11][: len(wide[1::11])]  # ties
    for y in (tied, wide.to(dtype), torch.cat([tied[: n // 2], wide[n // 2 :].to(dtype)])):
        seed = draw_seed(gen)
        assert float(op(y, z, None, seed)) == float(reference.codec(y, z, None, seed))
        assert float(op(y, z, z[:, :1], seed)) == float(reference.codec(y, z, z[:, :1], seed))


def test_numpy_and_integer_response_accepted(gen):
    z = torch.randn(300, generator=gen, dtype=torch.float64)
    y = (z > 0).long()
    assert unlearn.codec(y.numpy(), z.numpy()) == unlearn.codec(y.double(), z)


@on_devices
def test_opcheck(device):
    y = torch.randn(40, dtype=torch.float64, device=device)
    z = torch.randn(40, 2, dtype=torch.float64, device=device)
    x = torch.randn(40, 1, dtype=torch.float64, device=device)
    torch.library.opcheck(op, (y, z, None, 3))
    torch.library.opcheck(op, (y, z, x, 3))
    y = torch.randn(50, dtype=torch.float64, device=device)
    z = torch.randn(50, 2, dtype=torch.float64, device=device)
    x = torch.randn(50, 3, dtype=torch.float64, device=device)
    torch.library.opcheck(op, (y, z, x, 3))
    torch.library.opcheck(op, (y, z, None, 3))


def test_torch_compile_fullgraph():
    y = torch.randn(64, dtype=torch.float64)
    z = torch.randn(64, 2, dtype=torch.float64)

    @torch.compile(fullgraph=True)
    def f(y, z):
        return op(y, z, None, 0) * 2

    assert float(f(y, z)) == 2 * float(op(y, z, None, 0))


# Bad input raises ValueError naming the argument, in the wrapper, the compiled op and the twin alike.

f64 = torch.float64
Y = torch.randn(20, dtype=f64)
Z = torch.randn(20, 2, dtype=f64)

# (y, z, x, argument named in the message)
CODEC_CASES = {
    "mismatched lengths": (Y[:15], Z, None, "y"),
    "mismatched x rows": (Y, Z, torch.randn(19, 1, dtype=f64), "x"),
    "one row": (Y[:1], Z[:1], None, "z"),
    "nan in z": (Y, with_nan(Z), None, "z"),
    "inf in y": (with_inf(Y), Z, None, "y"),
    "nan in x": (Y, Z, with_nan(torch.randn(20, 1, dtype=f64)), "x"),
    "constant y": (torch.ones(20, dtype=f64), Z, None, "y"),
    "integer z": (Y, torch.randint(0, 3, (20, 2)), None, "z"),
    "3-d z": (Y, torch.randn(20, 2, 1, dtype=f64), None, "z"),
    "2-d y": (Y[:, None].expand(20, 2), Z, None, "y"),
    "x dtype differs": (Y, Z, torch.randn(20, 1, dtype=torch.float32), "x"),
}


@pytest.mark.parametrize("case", CODEC_CASES)
@pytest.mark.parametrize("impl", ["op", "twin"])
def test_op_errors(case, impl):
    y, z, x, name = CODEC_CASES[case]
    fn = op if impl == "op" else reference.codec
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(y, z, x, 0)


@pytest.mark.parametrize("case", [c for c in CODEC_CASES if c != "x dtype differs"])
def test_wrapper_errors(case):
    y, z, x, name = CODEC_CASES[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        unlearn.codec(y, z, x)


# On every device, against the CPU kernel and the twin ----------------------------------------


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("n", [2, 37, 500])
def test_identical_on_integer_data(gen, device, dtype, conditional, n):
    z = integer_points(gen, n, 2, dtype)
    x = integer_points(gen, n, 3, dtype) if conditional else None
    y = torch.randint(0, 5, (n,), generator=gen).to(dtype)
    y[0], y[1] = 0, 1  # never constant
    seed = draw_seed(gen)
    out = op(y.to(device), z.to(device), None if x is None else x.to(device), seed)
    assert out.device.type == device and out.dtype == dtype
    assert torch.equal(out.cpu(), op(y, z, x, seed))
    assert torch.equal(out.cpu(), reference.codec(y, z, x, seed))


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conditional", [False, True])
def test_matches_on_random_data(gen, device, dtype, conditional):
    n = 1500
    z = torch.randn(n, 2, generator=gen, dtype=dtype)
    x = torch.randn(n, 40, generator=gen, dtype=dtype) if conditional else None
    y = (z[:, 0] * z[:, 1] + 0.5 * torch.randn(n, generator=gen, dtype=dtype)).to(dtype)
    out = float(op(y.to(device), z.to(device), None if x is None else x.to(device), 3))
    assert abs(out - float(op(y, z, x, 3))) <= TOL[dtype]
    assert abs(out - float(reference.codec(y, z, x, 3))) <= TOL[dtype]


# Exact sums: the numerator and denominator of T(y, z) reach n^3 and passed
# int64 above n of about 3.8 million (T came out above 1). ------------------------


def _craft(rng: random.Random, count: int) -> list[int]:
    """int64 values crowded at the edges of the range, where sums overflow."""
    edges = [2**63 - 1, -(2**63), 2**63 - 2, -(2**63) + 1, 2**32 - 1, -(2**32), 2**31, 0, -1, 1]
    return [rng.choice(edges) if rng.random() < 0.5 else rng.randrange(-(2**63), 2**63) for _ in range(count)]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 2**30])
def test_kernel_accumulator_is_exact(chunk):
    """common/exact_sum.h through its test hook: exact 128-bit sums of int64
    entries in chunks, and their rounding to float64 is Python's float(int)."""
    rng = random.Random(chunk)
    for count in (0, 1, 2, 5, 100, 1000):
        values = _craft(rng, count)
        hi, lo, rounded = torch.ops.unlearn_testing.exact_sum(torch.tensor(values, dtype=torch.int64), chunk)
        exact = sum(values)
        assert hi * 2**64 + (lo & (2**64 - 1)) == exact
        assert rounded == float(exact)
    big = torch.full((40, 25), 2**63 - 1, dtype=torch.int64)  # 2-D, 1000 x the largest int64
    hi, lo, _ = torch.ops.unlearn_testing.exact_sum(big, chunk)
    assert hi * 2**64 + (lo & (2**64 - 1)) == 1000 * (2**63 - 1)


@pytest.mark.parametrize("chunk", [1, 3, 64, 2**30])
def test_twin_accumulator_is_exact(chunk):
    from unlearn.ops.ranks import exact_sum

    rng = random.Random(chunk)
    for count in (0, 1, 2, 5, 100, 1000):
        values = _craft(rng, count)
        assert exact_sum(torch.tensor(values, dtype=torch.int64), chunk) == sum(values)


def test_twin_ratio_is_exact_past_int64():
    """The twin's T from crafted rank vectors whose sums pass int64 (numbers
    that only real inputs of billions of rows produce): the numerator and the
    denominator exact, each rounded once."""
    from unlearn.ops.reference.codec import codec_from_neighbors

    k = 8
    up = torch.tensor([3_000_000_000 - 17 * i for i in range(k)], dtype=torch.int64)
    down = torch.tensor([2_900_000_000 + 13 * i for i in range(k)], dtype=torch.int64)
    m = torch.tensor([(i + 1) % k for i in range(k)])
    nx = torch.tensor([(i + 3) % k for i in range(k)])
    U, D, M, N = up.tolist(), down.tolist(), m.tolist(), nx.tolist()
    r_m = [min(U[i], U[M[i]]) for i in range(k)]
    num = sum(k * r_m[i] - D[i] * D[i] for i in range(k))  # about -7e19: past int64
    den = sum(D[i] * (k - D[i]) for i in range(k))
    assert num < -(2**63) and den < -(2**63)
    assert float(codec_from_neighbors(up, down, m, None, torch.float64)) == float(num) / float(den)
    r_n = [min(U[i], U[N[i]]) for i in range(k)]
    num, den = sum(r_m[i] - r_n[i] for i in range(k)), sum(U[i] - r_n[i] for i in range(k))
    assert float(codec_from_neighbors(up, down, m, nx, torch.float64)) == float(num) / float(den)


def exact_t_of_squares(n: int) -> float:
    """T(y, z) for z = (0, 1, 4, ..., (n-1)^2) in any order and y = z: no ties,
    every point's nearest neighbour is the next smaller one (the first's is the
    second), so sum min(R_i, R_M(i)) = n(n+1)/2 - (n-1); exact in Python ints."""
    sum_l2 = n * (n + 1) * (2 * n + 1) // 6
    num = n * (n * (n + 1) // 2 - (n - 1)) - sum_l2
    den = n * n * (n + 1) // 2 - sum_l2
    return float(num) / float(den)


def squares(n: int, seed: int) -> torch.Tensor:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order.double().square()[:, None]  # exact in float64 up to n of 9e7


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_exact_value_on_squares(n):
    z = squares(n, n)
    want = exact_t_of_squares(n)
    assert float(op(z[:, 0], z, None, 0)) == want == float(reference.codec(z[:, 0], z, None, 0))


SLOW = pytest.mark.skipif(os.environ.get("UNLEARN_SLOW_TESTS") != "1", reason="set UNLEARN_SLOW_TESTS=1 to run")


@pytest.mark.slow
@SLOW
def test_exact_at_four_million_rows():
    """n = 4e6 (sums near 1e19): T is the exact value, below 1 (was 1.0000010)."""
    n = 4_000_000
    z = squares(n, 0)
    t = float(op(z[:, 0], z, None, 0))
    assert t == exact_t_of_squares(n) and t < 1


def test_refuses_more_rows_than_exact_sums_allow():
    assert_too_many_rows_refused("codec", [("(y, points, None, 0)", "z"), ("(y[:2], points[:2], points, 0)", "x")])


@pytest.mark.parametrize("seed", [2**63, 2**64, -(2**63) - 1])
def test_wrapper_refuses_seeds_beyond_int64(seed):
    with pytest.raises(ValueError, match=r"codec: seed must fit in int64"):
        unlearn.ops.codec(Y, Z, seed=seed)


def test_seeds_at_the_int64_edges_match_twin(gen):
    z = integer_points(gen, 200, 2, torch.float64)
    y = torch.randint(0, 5, (200,), generator=gen).double()
    for seed in (-(2**63), 2**63 - 1):
        assert torch.equal(unlearn.ops.codec(y, z, seed=seed), reference.codec(y, z, None, seed))


def test_any_layout_gives_the_same_value(gen):
    y = torch.randn(300, generator=gen, dtype=torch.float64)
    zx = torch.randn(3, 300, generator=gen, dtype=torch.float64)
    z, x = zx[:2].t(), zx[2:].t()  # column-major views
    want = op(y, z.contiguous(), x.contiguous(), 4)
    assert torch.equal(op(y, z, x, 4), want) and torch.equal(reference.codec(y, z, x, 4), want)
    strided_y = torch.stack([y, y], dim=1)[:, 0]
    assert torch.equal(op(strided_y, z, x, 4), want)
    tied = torch.randn(1, 2, generator=gen, dtype=torch.float64).expand(300, 2)  # expanded: all rows equal
    assert torch.equal(op(y, tied, None, 4), op(y, tied.contiguous(), None, 4))
    assert torch.equal(op(y, tied, None, 4), reference.codec(y, tied, None, 4))
