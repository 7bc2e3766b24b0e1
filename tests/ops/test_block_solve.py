"""torch.ops.unlearn.block_solve against its twin and a dense solve, bad input,
and on CUDA against the CPU kernel."""

from __future__ import annotations

import pytest
import torch

from tests.devices import cuda_only, on_devices
from unlearn.ops import reference

block_solve = torch.ops.unlearn.block_solve


def _blocks(gen, dtype=torch.float64):
    return (
        [
            torch.randn(8, 30, generator=gen, dtype=dtype),  # low rank, Woodbury
            torch.randn(40, 30, generator=gen, dtype=dtype),  # low rank, m >= d: Cholesky
            (lambda a: a @ a.T + torch.eye(5, dtype=dtype))(torch.randn(5, 5, generator=gen, dtype=dtype)),
            torch.randn(8, 30, generator=gen, dtype=dtype),  # batched with the first
            torch.randn(1, 3, generator=gen, dtype=dtype),  # rank 1
        ],
        [True, True, False, True, True],
    )


def test_matches_twin_and_dense_solve(gen):
    blocks, low_rank = _blocks(gen)
    g = torch.randn(98, generator=gen, dtype=torch.float64)
    ours = block_solve(blocks, g, 0.05, low_rank)
    torch.testing.assert_close(ours, reference.block_solve(blocks, g, 0.05, low_rank), rtol=0, atol=1e-9)
    dense = torch.block_diag(*[a.T @ a / a.shape[0] if lr else a for a, lr in zip(blocks, low_rank)])
    exact = torch.linalg.solve(dense + 0.05 * torch.eye(98, dtype=torch.float64), g)
    assert float((ours - exact).abs().max()) < 1e-6


def test_takes_float32_blocks_with_a_float64_g(gen):
    blocks, low_rank = _blocks(gen)
    single = [a.float() for a in blocks]
    g = torch.randn(98, generator=gen, dtype=torch.float64)
    ours = block_solve(single, g, 0.05, low_rank)
    assert ours.dtype == torch.float64
    exact = block_solve([a.double() for a in single], g, 0.05, low_rank)
    # Only the block products are rounded to float32: errors at float32 level.
    for x in (ours, reference.block_solve(single, g, 0.05, low_rank)):
        assert float((x - exact).abs().max() / exact.abs().max()) < 1e-5
    for fn in (block_solve, reference.block_solve):
        with pytest.raises(ValueError, match="block 0 must be on g's device .* or float32, got"):
            fn(blocks, g.float(), 0.05, low_rank)


def test_names_the_indefinite_block(gen):
    blocks, low_rank = _blocks(gen)
    blocks[2] = -torch.eye(5, dtype=torch.float64)
    g = torch.randn(98, generator=gen, dtype=torch.float64)
    for fn in (block_solve, reference.block_solve):
        with pytest.raises(ValueError, match=r"block 2 \(dense, 5 x 5\) is not positive definite"):
            fn(blocks, g, 0.05, low_rank)


@pytest.mark.parametrize(
    "case, match",
    [
        ("no damping on low rank", "block 0 has rank 8 < size 30"),
        ("wrong g length", "g has 97 entries"),
        ("flag count", "low_rank has 4 entries"),
        ("negative damping", "damping must be"),
        ("nan block", "block 1 contains NaN"),
        ("non-square dense", "block 2 is dense but not square"),
    ],
)
def test_bad_input(gen, case, match):
    blocks, low_rank = _blocks(gen)
    g = torch.randn(98, generator=gen, dtype=torch.float64)
    damping = 0.05
    if case == "no damping on low rank":
        damping = 0.0
    elif case == "wrong g length":
        g = g[:97]
    elif case == "flag count":
        low_rank = low_rank[:4]
    elif case == "negative damping":
        damping = -1.0
    elif case == "nan block":
        blocks[1] = blocks[1].clone()
        blocks[1][0, 0] = float("nan")
    else:
        blocks[2] = torch.randn(5, 4, dtype=torch.float64)
    for fn in (block_solve, reference.block_solve):
        with pytest.raises(ValueError, match=match):
            fn(blocks, g, damping, low_rank)


@on_devices
def test_opcheck(device):
    blocks = [torch.randn(4, 6, dtype=torch.float64, device=device), torch.eye(3, dtype=torch.float64, device=device)]
    g = torch.randn(9, dtype=torch.float64, device=device)
    torch.library.opcheck(block_solve, (blocks, g, 0.1, [True, False]))
    blocks = [torch.randn(4, 6, device=device, dtype=torch.float64)]
    torch.library.opcheck(block_solve, (blocks, torch.randn(6, device=device, dtype=torch.float64), 0.1, [True]))


@cuda_only
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(16, 64, generator=g, dtype=torch.float64), torch.eye(8, dtype=torch.float64) * 3]
    rhs = torch.randn(72, generator=g, dtype=torch.float64)
    cpu = block_solve(blocks, rhs, 0.1, [True, False])
    gpu = block_solve([b.cuda() for b in blocks], rhs.cuda(), 0.1, [True, False])
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-9)
