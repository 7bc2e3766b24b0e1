"""torch.ops.unlearn.block_solve against its twin and a dense solve, bad input,
and on CUDA against the CPU kernel."""

from __future__ import annotations

import pytest
import torch

from tests.devices import cuda_only, on_devices
from tests.ops.helpers import dense_solution
from unlearn.ops import reference

block_solve = torch.ops.unlearn.block_solve
f64 = torch.float64


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_non_finite_entry_anywhere_is_refused(gen, bad, dtype):
    """A single NaN or infinity, at the start, the middle or the end of a
    block of more than 2^20 entries read through a transposed view, or in g: both
    refuse it, naming the tensor."""
    factor = torch.randn(2051, 512, generator=gen, dtype=dtype)  # read as its transpose, 512 x 2051
    g = torch.randn(2051, generator=gen, dtype=torch.float64)
    for where in (0, factor.numel() // 2 + 1, factor.numel() - 1):
        block = factor.clone()
        block.view(-1)[where] = bad
        for fn in (block_solve, reference.block_solve):
            with pytest.raises(ValueError, match="block 0 contains NaN or infinite values"):
                fn([block.T], g, 0.5, [True])
    g[1000] = bad
    for fn in (block_solve, reference.block_solve):
        with pytest.raises(ValueError, match="g contains NaN or infinite values"):
            fn([factor.T], g, 0.5, [True])


def _messages(blocks, g, damping, low_rank):
    """The ValueError texts of the op and the twin on the same arguments."""
    texts = []
    for fn in (block_solve, reference.block_solve):
        with pytest.raises(ValueError) as error:
            fn(blocks, g, damping, low_rank)
        texts.append(str(error.value))
    return texts


@pytest.mark.parametrize(
    "dtype, damping", [(torch.float64, 1e-320), (torch.float64, 5e-324), (torch.float32, 1e-40), (torch.float32, 1e-45)]
)
def test_refuses_a_damping_lost_in_rounding_like_the_twin(gen, dtype, damping):
    """A low-rank factor with m < d and a damping below the dtype's resolution:
    the Woodbury path divided by the damping and returned inf."""
    u = torch.randn(3, 5, generator=gen, dtype=dtype)
    g = torch.randn(5, generator=gen, dtype=dtype)
    largest = float((u.square().sum(0) / 3).max())
    ours, twin = _messages([torch.eye(2, dtype=dtype), u], torch.cat([g[:2], g]), damping, [False, True])
    want = (
        "block_solve: block 1 has rank 3 < size 5, so it needs a damping not lost in rounding next to its "
        f"largest diagonal entry {largest}, got {damping}"
    )
    assert ours == twin == want


def test_refuses_a_solution_past_the_dtype(gen):
    """A positive definite block whose solution overflows: refused, not inf."""
    blocks = [torch.eye(2, dtype=torch.float64), torch.tensor([[1e-300]], dtype=torch.float64)]
    g = torch.tensor([1.0, 2.0, 1e300], dtype=torch.float64)
    ours, twin = _messages(blocks, g, 0.0, [False, False])
    assert ours == twin and ours.startswith("block_solve: block 1 (dense, 1 x 1) is not positive definite")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_refuses_a_factor_singular_to_rounding_whether_or_not_its_factorisation_passes(gen, dtype):
    """m >= d rows of rank 1 and a damping lost in rounding: the damped matrix
    is singular in the dtype, and whether Cholesky passes on it is noise."""
    u = torch.zeros(7, 2, dtype=dtype)
    u[6] = torch.tensor([1.0, 1.5]) * torch.rand(1, generator=gen, dtype=dtype) + 0.5
    g = torch.randn(2, generator=gen, dtype=torch.float64)
    ours, twin = _messages([u], g, 5e-324, [True])
    assert ours == twin and "singular to rounding" in ours


def test_a_float32_factor_beside_float64_ones_of_its_shape_forms_its_product_in_float32(gen):
    """The blocks of one shape are batched; a float32 block keeps its own product."""
    u32 = torch.randn(7, 3, generator=gen).double().float()
    u64 = torch.randn(7, 3, generator=gen, dtype=f64)
    g = torch.randn(6, generator=gen, dtype=f64)
    together = block_solve([u64, u32], g, 1e-3, [True, True])
    alone = block_solve([u32], g[3:], 1e-3, [True])
    assert torch.equal(together[3:], alone)
    torch.testing.assert_close(together, reference.block_solve([u64, u32], g, 1e-3, [True, True]), rtol=1e-9, atol=0)


@pytest.mark.parametrize("dtype, damping", [(torch.float64, 1e308), (torch.float32, 1e38)])
def test_huge_damping_solves_like_the_twin(gen, dtype, damping):
    """(U U^T / m + damping I) does not overflow where the twin's matrix does not."""
    u = torch.randn(8, 30, generator=gen, dtype=dtype)
    g = torch.randn(30, generator=gen, dtype=dtype)
    ours = block_solve([u], g, damping, [True])
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, reference.block_solve([u], g, damping, [True]))


def test_dense_blocks_are_read_by_their_lower_triangle(gen):
    """Documented: a dense block is taken as symmetric, its lower triangle read
    (the twin once solved with the whole matrix and disagreed with the op)."""
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    spd = a @ a.T + torch.eye(6, dtype=torch.float64)
    skewed = spd + torch.randn(6, 6, generator=gen, dtype=torch.float64).triu(1)  # upper triangle changed
    g = torch.randn(6, generator=gen, dtype=torch.float64)
    want = torch.linalg.solve(spd + 0.1 * torch.eye(6, dtype=torch.float64), g)
    for fn in (block_solve, reference.block_solve):
        torch.testing.assert_close(fn([skewed], g, 0.1, [False]), want, rtol=1e-10, atol=1e-12)


def test_layouts_work(gen):
    u = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    dense = (lambda m: m @ m.T + torch.eye(5, dtype=torch.float64))(torch.randn(5, 5, generator=gen, dtype=f64))
    g = torch.randn(30 + 8 + 5 + 3, generator=gen, dtype=torch.float64)
    blocks = [u.t(), u[::2, :], dense.t(), torch.ones(1, 3, dtype=torch.float64).expand(4, 3)]
    low_rank = [True, True, False, True]
    ours = block_solve(blocks, g[::1], 0.1, low_rank)
    torch.testing.assert_close(ours, block_solve([b.contiguous() for b in blocks], g, 0.1, low_rank), rtol=0, atol=0)
    torch.testing.assert_close(ours, reference.block_solve(blocks, g, 0.1, low_rank), rtol=0, atol=1e-9)
    strided_g = torch.stack([g, g], dim=1)[:, 0]
    assert torch.equal(block_solve(blocks, strided_g, 0.1, low_rank), ours)


def test_messages_are_the_twins():
    """Numbers are written as Python writes them, and counts past int64 exactly."""
    u = torch.randn(4, 6, dtype=torch.float64)
    for damping in (-1.0, -0.1 - 0.2, -1e-5, -1e16, float("nan"), float("inf")):
        ours, twin = _messages([u], torch.zeros(6, dtype=torch.float64), damping, [True])
        assert ours == twin and "damping must be finite and >= 0" in ours
    ours, twin = _messages([torch.zeros(1, 3)], torch.zeros(3), 1e100, [True])
    assert ours == twin == "block_solve: damping 1e+100 overflows g's dtype (float32, at most 3.4028234663852886e+38)"
    wide = torch.zeros(1, 1, dtype=torch.float64).expand(1, 2**62)  # a view: no memory
    ours, twin = _messages([wide] * 3, torch.zeros(3, dtype=torch.float64), 0.1, [True] * 3)
    assert ours == twin == "block_solve: g has 3 entries but the blocks cover 13835058055282163712 parameters"


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


def test_a_factor_converted_a_few_rows_at_a_time_solves_and_refuses_like_the_twin(gen):
    """A factor of more than 2^19 entries is brought to g's dtype a few rows at
    a time (by the check and the Woodbury solve), never whole: the same
    solution as the twin, and the same refusal of a damping lost in rounding,
    naming the same largest diagonal entry (summed in the same chunks)."""
    u = torch.randn(300, 2000, generator=gen, dtype=f64)  # 600,000 entries: two chunks of 262 rows
    g = torch.randn(2000, generator=gen, dtype=f64)
    for factor in (u, u.float()):  # (a float32 factor's product in float32 rounds apart from the twin's)
        ours = block_solve([factor], g, 0.5, [True])
        want = reference.block_solve([factor], g, 0.5, [True])
        scale = float(want.abs().max()) * (1e-9 if factor is u else 1e-3)
        torch.testing.assert_close(ours, want, rtol=0, atol=scale)
        largest = float((factor.double().square().sum(0) / 300).max())
        ours, twin = _messages([factor], g, largest * 2.0**-60, [True])
        assert ours == twin and "lost in rounding next to its largest diagonal entry" in ours


@pytest.mark.parametrize(
    "kind, m, d, scale, g_scale, dtype, g_dtype",
    [
        ("dense", 3, 3, 1e300, 1e151, f64, f64),  # the solution, 1e-149, once underflowed to 0
        ("dense", 3, 3, 1e-300, 1e-160, f64, f64),  # 1e140, once refused as not finite
        ("dense", 3, 3, 1e37, 2.0**61, torch.float32, torch.float32),
        ("factor", 5, 8, 1e150, 1e151, f64, f64),  # Woodbury
        ("factor", 5, 8, 1e-23, 1.0, torch.float32, f64),  # U U^T underflowed float32
        ("factor", 5, 8, 1e20, 1.0, torch.float32, f64),  # ... and overflowed it
        ("factor", 9, 4, 1e-23, 1.0, torch.float32, f64),  # U^T U, m >= d
        ("factor", 9, 4, 1e20, 1.0, torch.float32, f64),
    ],
)
def test_extreme_magnitudes_solve_like_a_dense_float64_solve(gen, kind, m, d, scale, g_scale, dtype, g_dtype):
    """g is scaled by a power of two chosen from g and the block together (one
    chosen from g alone took the solution out of range), and a float32
    factor whose products would leave float32's range forms them in g's
    dtype: kernel and twin agree with a dense float64 solve."""
    factored = kind == "factor"
    if factored:
        block = (torch.randn(m, d, generator=gen, dtype=f64) * scale).to(dtype)
        h = block.double().T @ block.double() / m
        damping = float(torch.linalg.eigvalsh(h)[-1])  # conditioning about 2
    else:
        block, damping = (torch.eye(d, dtype=f64) * scale).to(dtype), 0.0
    g = (torch.randn(d, generator=gen, dtype=f64) * g_scale).to(g_dtype)
    want = dense_solution([block], g, damping, [factored])
    tol = 1e-5 if torch.float32 in (dtype, g_dtype) else 1e-12
    for fn in (block_solve, reference.block_solve):
        got = fn([block], g, damping, [factored])
        torch.testing.assert_close(got.double(), want, rtol=0, atol=tol * float(want.abs().max()))
