"""CUDA kernels of torch.ops.unlearn against the compiled CPU kernels and the twins."""

from __future__ import annotations

import pytest
import torch

import unlearn
from unlearn.ops import reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

nn_op = torch.ops.unlearn.nearest_neighbor
codec_op = torch.ops.unlearn.codec
select_op = torch.ops.unlearn.codec_select

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}
# n around the kernels' tiles (32 points, 32 rows per codec_select block), d around the 32-column chunk.
SHAPES = [(2, 1), (3, 2), (31, 4), (33, 1), (129, 3), (300, 5), (257, 33), (150, 1000)]


def _cuda(*tensors):
    return [t.cuda() for t in tensors]


def _integer_points(gen, n, d, dtype, high=4):
    return torch.randint(0, high, (n, d), generator=gen).to(dtype)


def _seed(gen):
    return int(torch.randint(0, 2**31, (1,), generator=gen))


def test_cuda_backend_is_compiled():
    assert "cuda: compiled" in unlearn.backend()["codec_select"]


# nearest_neighbor ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d", SHAPES)
def test_nearest_neighbor_identical_on_integer_points(gen, dtype, n, d):
    x = _integer_points(gen, n, d, dtype)
    seed = _seed(gen)
    gpu = nn_op(x.cuda(), seed)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.int64
    assert torch.equal(gpu.cpu(), nn_op(x, seed))
    assert torch.equal(gpu.cpu(), reference.nearest_neighbor(x, seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d", SHAPES + [(2000, 3)])
def test_nearest_neighbor_matches_on_random_points(gen, dtype, n, d):
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    gpu = nn_op(x.cuda(), 11).cpu()
    assert (gpu != torch.arange(n)).all()
    for other in (nn_op(x, 11), reference.nearest_neighbor(x, 11)):
        assert (gpu == other).double().mean() >= 0.999


def test_nearest_neighbor_duplicates_and_seeds():
    base = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = base.repeat_interleave(4, dim=0)
    for seed in range(20):
        gpu = nn_op(x.cuda(), seed).cpu()
        assert ((gpu // 4) == torch.arange(12) // 4).all()
        assert torch.equal(gpu, nn_op(x, seed))


# codec --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("n", [2, 37, 500])
def test_codec_identical_on_integer_data(gen, dtype, conditional, n):
    z = _integer_points(gen, n, 2, dtype)
    x = _integer_points(gen, n, 3, dtype) if conditional else None
    y = torch.randint(0, 5, (n,), generator=gen).to(dtype)
    y[0], y[1] = 0, 1  # never constant
    seed = _seed(gen)
    gpu = codec_op(*_cuda(y, z), None if x is None else x.cuda(), seed)
    assert gpu.device.type == "cuda" and gpu.dtype == dtype
    assert torch.equal(gpu.cpu(), codec_op(y, z, x, seed))
    assert torch.equal(gpu.cpu(), reference.codec(y, z, x, seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conditional", [False, True])
def test_codec_matches_on_random_data(gen, dtype, conditional):
    n = 1500
    z = torch.randn(n, 2, generator=gen, dtype=dtype)
    x = torch.randn(n, 40, generator=gen, dtype=dtype) if conditional else None
    y = (z[:, 0] * z[:, 1] + 0.5 * torch.randn(n, generator=gen, dtype=dtype)).to(dtype)
    gpu = float(codec_op(*_cuda(y, z), None if x is None else x.cuda(), 3))
    assert abs(gpu - float(codec_op(y, z, x, 3))) <= TOL[dtype]
    assert abs(gpu - float(reference.codec(y, z, x, 3))) <= TOL[dtype]


# codec_select -------------------------------------------------------------------------------


def _assert_same_selection(gpu, cpu, dtype):
    order, scores = gpu
    assert order.device.type == "cuda" and scores.device.type == "cuda"
    assert order.dtype == torch.int64 and scores.dtype == dtype
    assert torch.equal(order.cpu(), cpu[0])
    torch.testing.assert_close(scores.cpu(), cpu[1], rtol=0, atol=TOL[dtype], equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cache", [1 << 30, 0])
# p = 256 fills whole candidate blocks, so column p and its padding get a block of their own.
@pytest.mark.parametrize("n, p", [(2, 1), (2, 3), (45, 7), (120, 8), (97, 130), (64, 256), (64, 257)])
def test_codec_select_identical_on_integer_data(gen, dtype, cache, n, p):
    f = _integer_points(gen, n, p, dtype, high=3)
    if p > 2:
        f[:, 1] = 1.0  # constant column
    if n > 4:
        f[n // 2 :] = f[: n - n // 2].clone()  # duplicated rows
    y = torch.randint(0, 4, (n,), generator=gen).to(dtype)
    y[0], y[1] = 0, 1
    k = min(p, 6)
    for seed in (0, _seed(gen)):
        gpu = select_op(*_cuda(y, f), k, False, seed, cache)
        _assert_same_selection(gpu, select_op(y, f, k, False, seed, cache), dtype)
        if n * p <= 3000:
            _assert_same_selection(gpu, reference.codec_select(y, f, k, False, seed, cache), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stop_early", [False, True])
@pytest.mark.parametrize("cache", [1 << 30, 0])
def test_codec_select_matches_on_random_data(gen, dtype, stop_early, cache):
    n, p = 150, 12
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    y = (f[:, 3] * f[:, 5] + 0.3 * torch.randn(n, generator=gen, dtype=dtype)).to(dtype)
    seed = _seed(gen)
    gpu = select_op(*_cuda(y, f), 6, stop_early, seed, cache)
    _assert_same_selection(gpu, reference.codec_select(y, f, 6, stop_early, seed, cache), dtype)
    _assert_same_selection(gpu, select_op(y, f, 6, stop_early, seed, cache), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_codec_select_matches_cpu_at_scale(gen, dtype):
    n, p = 1500, 300
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    y = (f[:, 7] + f[:, 100] ** 2 + torch.sin(3 * f[:, 250]) + 0.2 * torch.randn(n, generator=gen, dtype=dtype))
    gpu = select_op(*_cuda(y, f), 8, False, 4, 1 << 30)
    _assert_same_selection(gpu, select_op(y, f, 8, False, 4, 1 << 30), dtype)
    # The recomputed tiles give the very same result as the cache.
    again = select_op(*_cuda(y, f), 8, False, 4, 0)
    assert torch.equal(gpu[0], again[0]) and torch.equal(gpu[1], again[1])


def test_codec_select_stop_early_pads(gen):
    f = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(300, generator=gen, dtype=torch.float64)
    order, scores = select_op(*_cuda(y, f), 6, True, 0, 1 << 30)
    cpu = select_op(y, f, 6, True, 0, 1 << 30)
    _assert_same_selection((order, scores), cpu, torch.float64)
    picked = int((order >= 0).sum())
    assert torch.all(order[picked:] == -1) and torch.isnan(scores[picked:]).all()


def test_codec_select_stops_when_y_is_determined():
    # y is a function of column 0 alone: after picking it every neighbour has the same rank.
    f = torch.tensor([[0.0, 5.0], [0.0, 1.0], [1.0, 2.0], [1.0, 7.0], [2.0, 3.0], [2.0, 0.0]])
    y = f[:, 0].clone()
    gpu = select_op(*_cuda(y, f), 2, False, 0, 1 << 30)
    _assert_same_selection(gpu, select_op(y, f, 2, False, 0, 1 << 30), torch.float32)


# opcheck ------------------------------------------------------------------------------------


def test_opcheck_cuda():
    x = torch.randn(50, 3, dtype=torch.float64, device="cuda")
    torch.library.opcheck(nn_op, (x, 7))
    y = torch.randn(50, dtype=torch.float64, device="cuda")
    z = torch.randn(50, 2, dtype=torch.float64, device="cuda")
    torch.library.opcheck(codec_op, (y, z, x, 3))
    torch.library.opcheck(codec_op, (y, z, None, 3))
    f = torch.randn(30, 5, dtype=torch.float64, device="cuda")
    torch.library.opcheck(select_op, (y[:30], f, 3, False, 1, 1 << 20))
    torch.library.opcheck(select_op, (y[:30], f, 3, False, 1, 0))
