"""perturb, channel_means and block_solve against their twins and known truths."""

from __future__ import annotations

import pytest
import torch

from unlearn.ops import reference

perturb = torch.ops.unlearn.perturb
channel_means = torch.ops.unlearn.channel_means
block_solve = torch.ops.unlearn.block_solve


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_perturb_matches_twin_and_is_seeded(gen, dtype):
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=dtype)
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    ours = perturb(x, 50, 0.1, seed)
    assert ours.shape == (50, 3, 1, 8, 8) and ours.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, reference.perturb(x, 50, 0.1, seed), rtol=0, atol=tol)
    assert torch.equal(ours, perturb(x, 50, 0.1, seed))
    assert not torch.equal(ours, perturb(x, 50, 0.1, seed + 1))


def test_perturb_noise_is_standard_normal():
    x = torch.zeros(1000, dtype=torch.float64)
    e = perturb(x, 200, 1.0, 3).flatten()  # 200,000 draws
    assert abs(float(e.mean())) < 0.01 and abs(float(e.std()) - 1) < 0.01
    assert abs(float((e.abs() < 1.96).double().mean()) - 0.95) < 0.005
    assert torch.equal(perturb(x, 3, 0.0, 3), x.expand(3, 1000))


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 9), (4, 6, 5, 5), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channel_means_writes_its_columns_only(gen, shape, dtype):
    act = torch.randn(*shape, generator=gen, dtype=dtype)
    out = torch.full((shape[0], shape[1] + 5), 7.0, dtype=dtype)
    twin = out.clone()
    channel_means(act, out, 2)
    reference.channel_means(act, twin, 2)
    torch.testing.assert_close(out, twin)
    expected = act.reshape(shape[0], shape[1], -1).mean(dim=2)
    torch.testing.assert_close(out[:, 2 : 2 + shape[1]], expected)
    assert (out[:, :2] == 7).all() and (out[:, 2 + shape[1] :] == 7).all()


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


def test_block_solve_matches_twin_and_dense_solve(gen):
    blocks, low_rank = _blocks(gen)
    g = torch.randn(98, generator=gen, dtype=torch.float64)
    ours = block_solve(blocks, g, 0.05, low_rank)
    torch.testing.assert_close(ours, reference.block_solve(blocks, g, 0.05, low_rank), rtol=0, atol=1e-9)
    dense = torch.block_diag(*[a.T @ a / a.shape[0] if lr else a for a, lr in zip(blocks, low_rank)])
    exact = torch.linalg.solve(dense + 0.05 * torch.eye(98, dtype=torch.float64), g)
    assert float((ours - exact).abs().max()) < 1e-6


def test_block_solve_takes_float32_blocks_with_a_float64_g(gen):
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


def test_block_solve_names_the_indefinite_block(gen):
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
def test_block_solve_bad_input(gen, case, match):
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


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_perturb_and_channel_means_bad_input(impl):
    p = perturb if impl == "op" else reference.perturb
    c = channel_means if impl == "op" else reference.channel_means
    with pytest.raises(ValueError, match="copies"):
        p(torch.randn(3), 0, 0.1, 0)
    with pytest.raises(ValueError, match="sigma"):
        p(torch.randn(3), 2, -1.0, 0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        p(torch.randint(0, 3, (3,)), 2, 0.1, 0)
    with pytest.raises(ValueError, match="exceeds"):
        c(torch.randn(2, 4, 3), torch.zeros(2, 5), 2)
    with pytest.raises(ValueError, match=r"\bout\b"):
        c(torch.randn(2, 4, 3), torch.zeros(3, 8), 0)


def test_opcheck():
    x = torch.randn(2, 3, dtype=torch.float64)
    torch.library.opcheck(perturb, (x, 4, 0.1, 1))
    torch.library.opcheck(channel_means, (torch.randn(3, 4, 2, 2), torch.zeros(3, 6), 1))
    blocks = [torch.randn(4, 6, dtype=torch.float64), torch.eye(3, dtype=torch.float64)]
    torch.library.opcheck(block_solve, (blocks, torch.randn(9, dtype=torch.float64), 0.1, [True, False]))
