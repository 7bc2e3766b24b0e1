"""torch.ops.unlearn.codec: parity with its twin, known truths, ties, tracing,
bad input, and on every device against the CPU kernel and the twin."""

from __future__ import annotations

import math

import pytest
import torch

import unlearn
from tests.devices import on_devices
from tests.ops.helpers import DTYPES, TOL, draw_seed, integer_points, with_inf, with_nan
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
