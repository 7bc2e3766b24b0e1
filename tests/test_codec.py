"""torch.ops.unlearn.codec: parity with its twin, known truths, ties, tracing."""

from __future__ import annotations

import math

import pytest
import torch

import unlearn
from unlearn.ops import reference

op = torch.ops.unlearn.codec


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, q, p", [(2, 1, 0), (300, 1, 0), (1000, 2, 1), (800, 3, 4), (400, 12, 3)])
def test_matches_twin(gen, dtype, n, q, p):
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    z = torch.randn(n, q, generator=gen, dtype=dtype)
    x = torch.randn(n, p, generator=gen, dtype=dtype) if p else None
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
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


def test_numpy_and_integer_response_accepted(gen):
    z = torch.randn(300, generator=gen, dtype=torch.float64)
    y = (z > 0).long()
    assert unlearn.codec(y.numpy(), z.numpy()) == unlearn.codec(y.double(), z)


def test_opcheck():
    y = torch.randn(40, dtype=torch.float64)
    z = torch.randn(40, 2, dtype=torch.float64)
    x = torch.randn(40, 1, dtype=torch.float64)
    torch.library.opcheck(op, (y, z, None, 3))
    torch.library.opcheck(op, (y, z, x, 3))


def test_torch_compile_fullgraph():
    y = torch.randn(64, dtype=torch.float64)
    z = torch.randn(64, 2, dtype=torch.float64)

    @torch.compile(fullgraph=True)
    def f(y, z):
        return op(y, z, None, 0) * 2

    assert float(f(y, z)) == 2 * float(op(y, z, None, 0))
