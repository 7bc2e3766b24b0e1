"""torch.ops.unlearn.codec_step (one FOCI step over a block of rows and
candidate columns): against its twin, against codec_select, opcheck, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import unlearn
from tests.ops.helpers import assert_too_many_rows_refused, draw_seed
from unlearn.ops import reference
from unlearn.ops.ranks import max_ranks

op = torch.ops.unlearn.codec_step


def _block_cache(selected: torch.Tensor, rows: range) -> torch.Tensor:
    cache = torch.zeros(len(rows), selected.shape[0], dtype=selected.dtype)
    for c in selected.unbind(1):
        cache += (c[rows.start : rows.stop, None] - c[None, :]).square()
    return cache


def _data(gen, n, p, dtype, integer):
    if integer:
        f = torch.randint(0, 3, (n, p), generator=gen).to(dtype)
        f[n // 2 :] = f[: n - n // 2].clone()
        return torch.randint(0, 4, (n,), generator=gen).to(dtype), f
    f = torch.randn(n, p, generator=gen, dtype=dtype)
    return f[:, 0] * f[:, 1] + 0.3 * torch.randn(n, generator=gen, dtype=dtype), f


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("picked", [0, 1, 3])
@pytest.mark.parametrize("rows", [(0, 70), (13, 41), (69, 70)])
def test_matches_twin(gen, dtype, integer, picked, rows):
    y, f = _data(gen, 70, 8, dtype, integer)
    selected, candidates = f[:, :picked], f[:, picked:]
    seed = draw_seed(gen)
    want = reference.codec_step(y, candidates, selected, *rows, seed)
    for cache in (None, _block_cache(selected, range(*rows))):
        got = op(y, candidates, selected, *rows, seed, cache)
        assert got[0].dtype == torch.int64 and got[0].shape == (candidates.shape[1],) and got[1].shape == ()
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("integer", [False, True])
def test_matches_twin_with_many_columns(gen, integer):
    """Many candidates, n > 129 (the row scans go tier by tier)."""
    y, f = _data(gen, 150, 102, torch.float64, integer)
    selected, candidates = f[:, :2], f[:, 2:]
    seed = draw_seed(gen)
    want = reference.codec_step(y, candidates, selected, 0, 150, seed)
    for cache in (None, _block_cache(selected, range(150))):
        assert all(map(torch.equal, op(y, candidates, selected, 0, 150, seed, cache), want))


def test_row_blocks_add_up_to_the_selection_sums(gen):
    y, f = _data(gen, 90, 6, torch.float64, False)
    order = torch.ops.unlearn.codec_select(y, f, 3, False, 5)[0].tolist()
    selected = f[:, order[:2]]
    whole = op(y, f, selected, 0, 90, 5)
    parts = [op(y, f, selected, a, b, 5) for a, b in ((0, 31), (31, 60), (60, 90))]
    assert torch.equal(sum(p[0] for p in parts), whole[0]) and torch.equal(sum(p[1] for p in parts), whole[1])
    # The third pick of codec_select is the best unselected column of this step.
    num = whole[0].clone()
    num[order[:2]] = -1
    assert int(num.argmax()) == order[2]
    up, _ = max_ranks(y)
    t = (int(whole[0][order[2]]) - int(whole[1])) / (int(up.sum()) - int(whole[1]))
    assert t == pytest.approx(float(torch.ops.unlearn.codec_select(y, f, 3, False, 5)[1][2]), abs=1e-12)


def test_opcheck(gen):
    y, f = _data(gen, 30, 5, torch.float64, False)
    torch.library.opcheck(op, (y, f[:, 2:], f[:, :2], 4, 20, 1, None))
    torch.library.opcheck(op, (y, f[:, 2:], f[:, :2], 4, 20, 1, _block_cache(f[:, :2], range(4, 20))))
    torch.library.opcheck(op, (y, f, f[:, :0], 0, 30, 1, None))


Y = torch.randn(20, dtype=torch.float64)
F = torch.randn(20, 4, dtype=torch.float64)
STEP_CASES = {
    "rows reversed": ((Y, F, F[:, :1], 5, 5, 0, None), "rows must satisfy"),
    "rows past n": ((Y, F, F[:, :1], 0, 21, 0, None), "rows must satisfy"),
    "selected 1-d": ((Y, F, F[:, 0], 0, 20, 0, None), "selected must be a 2-D tensor"),
    "selected rows": ((Y, F, F[:10, :1], 0, 20, 0, None), "selected has 10 rows"),
    "selected dtype": ((Y, F, F[:, :1].float(), 0, 20, 0, None), "selected is (torch.float32|Float) but candidates"),
    "nan selected": (
        (Y, F, torch.full((20, 1), float("nan"), dtype=torch.float64), 0, 20, 0, None),
        "selected contains NaN",
    ),
    "cache shape": ((Y, F, F[:, :1], 0, 10, 0, torch.zeros(9, 20, dtype=torch.float64)), "cache must hold the rows"),
    "cache dtype": ((Y, F, F[:, :1], 0, 10, 0, torch.zeros(10, 20)), "cache must have the dtype"),
    "rows at int64's edges": ((Y, F, F[:, :1], -(2**63), 2**63 - 1, 0, None), "rows must satisfy"),
    "rows beyond n at int64's edge": ((Y, F, F[:, :1], 2**63 - 2, 2**63 - 1, 0, None), "rows must satisfy"),
    "constant y": ((torch.zeros(20, dtype=torch.float64), F, F[:, :1], 0, 20, 0, None), "y is constant"),
}


@pytest.mark.parametrize("case", STEP_CASES)
@pytest.mark.parametrize("impl", ["op", "twin"])
def test_errors(case, impl):
    args, match = STEP_CASES[case]
    fn = op if impl == "op" else reference.codec_step
    with pytest.raises(ValueError, match=match):
        fn(*args)


# A NaN or -inf in the cache once sent the kernel's row scan into an endless
# loop, and a negative cache was used as given: the checks run in a child
# interpreter, so a hang is a failed test rather than a stuck suite.
BAD_CACHES = textwrap.dedent(
    """
    import torch, unlearn
    from unlearn.ops import reference
    y, f = torch.randn(10, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    cases = {
        "nan": (torch.full((10, 10), float("nan"), dtype=torch.float64), "cache contains NaN values"),
        "one nan": (torch.zeros(10, 10, dtype=torch.float64).index_fill_(1, torch.tensor([4]), float("nan")),
                    "cache contains NaN values"),
        "negative": (-torch.ones(10, 10, dtype=torch.float64), "cache has negative values"),
        "-inf": (torch.full((10, 10), float("-inf"), dtype=torch.float64), "cache has negative values"),
    }
    for name, (cache, match) in cases.items():
        texts = []
        for fn in (torch.ops.unlearn.codec_step, reference.codec_step):
            try:
                fn(y, f, f[:, :1], 0, 10, 0, cache)
            except ValueError as error:
                texts.append(str(error))
            else:
                raise AssertionError(f"{name} cache accepted")
        assert texts[0] == texts[1] and match in texts[0], texts
    print("refused")
    """
)


def test_refuses_more_rows_than_exact_sums_allow():
    assert_too_many_rows_refused("codec_step", [("(y, points, points[:, :0], 0, 1, 0, None)", "candidates")])


def test_refuses_nan_and_negative_cache():
    run = subprocess.run([sys.executable, "-c", BAD_CACHES], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "refused" in run.stdout, run.stderr[-2000:]


def test_inf_cache_and_any_layout_match_twin(gen):
    """+inf (a squared distance past the dtype's range) is allowed; a cache's
    strides do not matter; its values are trusted (documented) and used as given."""
    y, f = _data(gen, 40, 6, torch.float64, False)
    selected, candidates = f[:, :2], f[:, 2:]
    cache = _block_cache(selected, range(5, 35))
    cache[3, 7] = cache[10, :] = float("inf")
    layouts = {
        "contiguous": cache,
        "transposed": cache.t().contiguous().t(),
        "strided": torch.stack([cache, cache], dim=2)[:, :, 0],
        "expanded": cache[:1].expand(30, 40),
        "arbitrary": torch.rand(30, 40, generator=gen, dtype=torch.float64),
    }
    for name, c in layouts.items():
        want = reference.codec_step(y, candidates, selected, 5, 35, 3, c.contiguous())
        got = op(y, candidates, selected, 5, 35, 3, c)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), name


@pytest.mark.parametrize(
    "name, value", [("row_begin", 2**64), ("row_end", 2**63), ("seed", 2**64), ("seed", -(2**63) - 1)]
)
def test_wrapper_refuses_ints_beyond_int64(name, value):
    kwargs = {"row_begin": 0, "row_end": 20, "seed": 0, name: value}
    with pytest.raises(ValueError, match=rf"codec_step: {name} must fit in int64"):
        unlearn.ops.codec_step(Y, F, F[:, :1], kwargs["row_begin"], kwargs["row_end"], seed=kwargs["seed"])
