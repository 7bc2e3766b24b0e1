"""torch.ops.unlearn.nearest_neighbor against its twin, scipy, and known ties;
bad input; and on every device against the CPU kernel and the twin."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scipy.spatial import cKDTree

import unlearn
from tests.devices import on_devices
from tests.ops.helpers import DTYPES, draw_seed, integer_points, with_nan
from unlearn.ops import reference

op = torch.ops.unlearn.nearest_neighbor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, d", [(2, 1), (7, 3), (300, 1), (1000, 3), (1000, 8), (500, 20), (200, 300)])
def test_matches_twin_on_random_points(gen, dtype, n, d):
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    seed = draw_seed(gen)
    assert torch.equal(op(x, seed), reference.nearest_neighbor(x, seed))


def tree_points(gen: torch.Generator, kind: str, n: int, d: int, dtype: torch.dtype) -> torch.Tensor:
    """Points that stress the k-d tree: ties on a grid, tight clusters with
    exact duplicates, signed zeros, and columns a million times apart in scale."""
    if kind == "grid":
        return integer_points(gen, n, d, dtype, high=3)
    if kind == "clusters":
        centres = torch.randn(7, d, generator=gen, dtype=torch.float64) * 100
        x = centres[torch.randint(0, 7, (n,), generator=gen)] + torch.randn(n, d, generator=gen).double() * 1e-3
        x[2::3] = x[1::3][: len(x[2::3])]  # exact duplicates
        return x.to(dtype)
    if kind == "signed_zeros":
        x = torch.randint(-1, 2, (n, d), generator=gen).to(dtype)
        x[x == 0] = torch.where(torch.rand(int((x == 0).sum()), generator=gen) < 0.5, -0.0, 0.0).to(dtype)
        return x
    scale = torch.logspace(-3, 3, d, dtype=torch.float64)
    return (torch.randn(n, d, generator=gen, dtype=torch.float64) * scale).to(dtype)


# The k-d tree (d <= 8, n >= 256) in every dimension it is compiled for, at
# sizes on both sides of where its leaves (12 to 25 points) go one level
# deeper, against the dense twin: the same neighbours, ties included.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", range(1, 9))
@pytest.mark.parametrize("kind", ["grid", "clusters", "signed_zeros", "scales"])
def test_tree_matches_twin(gen, dtype, d, kind):
    for n in (255, 256, 399, 400, 799, 800, 1601):
        x = tree_points(gen, kind, n, d, dtype)
        seed = draw_seed(gen)
        assert torch.equal(op(x, seed), reference.nearest_neighbor(x, seed)), (n, seed)


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


@on_devices
def test_opcheck(device):
    x = torch.randn(50, 3, dtype=torch.float64, device=device)
    torch.library.opcheck(op, (x, 7))


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_errors(impl):
    fn = op if impl == "op" else reference.nearest_neighbor
    bad_inputs = (
        torch.randn(1, 3),
        torch.randn(5),
        torch.randint(0, 3, (5, 2)),
        with_nan(torch.randn(5, 2)),
        torch.randn(5, 0),
    )
    for bad in bad_inputs:
        with pytest.raises(ValueError, match=r"\bx\b"):
            fn(bad, 0)


@on_devices
@pytest.mark.parametrize("n, d", [(4, 1), (40, 3), (300, 2)])
def test_distances_past_the_dtype_tie_among_the_other_points(device, n, d):
    """float32 points 1e20 apart: every squared distance is inf. The kernels
    tie them among the other points; the twin once let a point be its own
    neighbour (its inf diagonal tied too)."""
    x = (torch.randperm(n * d, generator=torch.Generator().manual_seed(n)).float().view(n, d) - n * d / 2) * 1e20
    rows = torch.arange(n)
    for seed in range(8):
        ours, twin = op(x.to(device), seed).cpu(), reference.nearest_neighbor(x, seed)
        assert torch.equal(ours, twin) and not (ours == rows).any()


@pytest.mark.parametrize("seed", [2**63, 2**64, -(2**63) - 1])
def test_wrapper_refuses_seeds_beyond_int64(seed):
    with pytest.raises(ValueError, match=r"nearest_neighbor: seed must fit in int64"):
        unlearn.ops.nearest_neighbor(torch.randn(4, 2), seed=seed)


def test_seeds_at_the_int64_edges_and_layouts_match_twin(gen):
    x = integer_points(gen, 300, 2, torch.float64)
    for seed in (-(2**63), 2**63 - 1):
        assert torch.equal(unlearn.ops.nearest_neighbor(x, seed=seed), reference.nearest_neighbor(x, seed))
    for view in (x.t().contiguous().t(), torch.stack([x, x], dim=2)[:, :, 0], x[:1].expand(5, 2)):
        assert torch.equal(op(view, 3), op(view.contiguous(), 3))
        assert torch.equal(op(view, 3), reference.nearest_neighbor(view, 3))


# The CPU's dense scan (d > 8, or n < 256) -----------------------------------------------------
# It computes every pair once, in blocks of 4 to 32 rows (by dtype and vector width), padded.

DENSE_SHAPES = [(2, 9), (3, 64), (17, 16), (33, 128), (65, 3), (255, 8), (300, 9), (1000, 33)]


def hard_points(gen: torch.Generator, n: int, d: int, dtype: torch.dtype, kind: str) -> torch.Tensor:
    """Points whose neighbours hinge on exact rounding and the tie rule."""
    if kind == "ties":  # duplicates and exact ties
        return integer_points(gen, n, d, dtype, high=3)
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    if kind == "random":
        return x
    if kind == "near ties":  # every second row a copy of the one before with one coordinate one ulp away
        x[1::2] = x[: n // 2 * 2 : 2]
        x[1::2, 0] = torch.nextafter(x[1::2, 0], torch.tensor(float("inf"), dtype=dtype))
        return x
    if kind == "offset":  # coordinates far from 0, differences rounded
        return 1e4 + 1e-3 * x
    if kind == "tiny":  # squared differences in the subnormals or 0
        return x * (1e-20 if dtype == torch.float32 else 1e-160)
    # "overflow": some squared distances past the dtype's range, others not
    x[torch.rand(n, generator=gen) < 0.5] *= 1e20 if dtype == torch.float32 else 1e160
    return x


HARD_KINDS = ["random", "ties", "near ties", "offset", "tiny", "overflow"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", HARD_KINDS)
@pytest.mark.parametrize("n, d", DENSE_SHAPES)
def test_dense_scan_matches_twin_on_hard_points(gen, dtype, kind, n, d):
    x = hard_points(gen, n, d, dtype, kind)
    for seed in (0, draw_seed(gen)):
        assert torch.equal(op(x, seed), reference.nearest_neighbor(x, seed))


_OTHER_ISA_SCRIPT = """
import torch, unlearn
from unlearn.ops import reference
from tests.ops.test_nearest_neighbor import DENSE_SHAPES, HARD_KINDS, hard_points
assert torch.backends.cpu.get_cpu_capability() == {capability!r}
gen = torch.Generator().manual_seed({seed})
for dtype in (torch.float32, torch.float64):
    for kind in HARD_KINDS:
        for n, d in DENSE_SHAPES:
            x = hard_points(gen, n, d, dtype, kind)
            assert torch.equal(torch.ops.unlearn.nearest_neighbor(x, 5), reference.nearest_neighbor(x, 5)), (kind, n, d)
print("same")
"""


@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2"])
def test_dense_scan_with_narrower_vectors(gen, capability):
    """The scan's vector width follows torch's CPU capability: the narrower
    ones, chosen with ATEN_CPU_CAPABILITY in a child interpreter."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86 only")
    if capability == "AVX2" and torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("no AVX2")
    script = _OTHER_ISA_SCRIPT.format(capability=capability, seed=draw_seed(gen))
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability.lower())
    root = Path(__file__).parents[2]
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert run.returncode == 0 and "same" in run.stdout, run.stderr[-2000:]


# On every device, against the CPU kernel and the twin ----------------------------------------

# n around the kernel's tile of 32 points, d around its 32-column chunk.
SHAPES = [(2, 1), (3, 2), (31, 4), (33, 1), (129, 3), (300, 5), (257, 33), (150, 1000)]


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d", SHAPES)
def test_identical_on_integer_points(gen, device, dtype, n, d):
    x = integer_points(gen, n, d, dtype)
    seed = draw_seed(gen)
    out = op(x.to(device), seed)
    assert out.device.type == device and out.dtype == torch.int64
    assert torch.equal(out.cpu(), op(x, seed))
    assert torch.equal(out.cpu(), reference.nearest_neighbor(x, seed))


@on_devices
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d", SHAPES + [(2000, 3)])
def test_agrees_on_random_points(gen, device, dtype, n, d):
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    out = op(x.to(device), 11).cpu()
    assert (out != torch.arange(n)).all()
    for other in (op(x, 11), reference.nearest_neighbor(x, 11)):
        assert (out == other).double().mean() >= 0.999


@on_devices
def test_duplicates_and_seeds(device):
    base = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    x = base.repeat_interleave(4, dim=0)
    for seed in range(20):
        out = op(x.to(device), seed).cpu()
        assert ((out // 4) == torch.arange(12) // 4).all()
        assert torch.equal(out, op(x, seed))
