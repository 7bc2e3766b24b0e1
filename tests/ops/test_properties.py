"""Property-based tests of every op: the compiled kernel (torch.ops.unlearn.<op>)
and its pure-PyTorch twin (unlearn.ops.reference.<op>) agree on generated
inputs, or both refuse them with the same exception.

Inputs vary shape, dtype (float32, float64 and wrong ones), layout
(column-major, sliced with NaN between the elements, stride-0 expanded views),
values (ties, duplicated rows, constant columns, tiny and huge magnitudes,
NaN/inf where they must be refused) and integer arguments (the int64 edges, and
Python ints beyond int64 through the typed wrappers unlearn.ops.<op>).
Integer results (neighbour indices, picks, rank sums) must be identical;
float results agree within the tolerances of the ops' own tests. Where an op
has a CUDA kernel the properties run on CUDA too (skipped without a device).

Inputs that crashed or hung the process in earlier versions (an out-of-bounds
write, an endless row scan) run in a child process (`run_isolated`) with a
timeout, so a regression fails the test instead of the suite.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading

import pytest
import torch
from hypothesis import assume, example, given, note, settings
from hypothesis import strategies as st

import unlearn
from tests.devices import on_devices
from tests.ops.helpers import TOL, dense_solution
from tests.ops.strategies import (
    INT64_MAX,
    INT64_MIN,
    KINDS,
    bad_dtypes,
    beyond_int64,
    float_dtypes,
    int64s,
    lay_out,
    layouts,
    moderate,
    non_finite,
    point_values,
    responses,
    safe_limit,
    seeds,
    values,
    with_bad_value,
)
from unlearn.ops import reference

ops = torch.ops.unlearn
# The thorough profile runs the isolated cases past a crash.
THOROUGH = settings.default.max_examples >= settings.get_profile("thorough").max_examples


def refuses(fn, args, match: str, exc: type[BaseException] = ValueError) -> None:
    with pytest.raises(exc, match=match):
        fn(*args)


def both_refuse(name: str, args, match: str, device: str = "cpu") -> None:
    """The compiled op (given `args` on `device`) and the twin (on the CPU) both
    raise ValueError whose message matches `match`."""
    refuses(getattr(ops, name), to_device(args, device), match)
    refuses(getattr(reference, name), args, match)


def to_device(args, device: str):
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            a = a.to(device)
        elif isinstance(a, list):
            a = [t.to(device) if isinstance(t, torch.Tensor) else t for t in a]
        out.append(a)
    return out


def word(name: str) -> str:
    return rf"\b{name}\b"


def sizes(small: int, large: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Mostly small sizes; at times one past a kernel's threshold."""
    return st.one_of(st.integers(2, small), st.integers(2, small), st.sampled_from(large))


# nearest_neighbor -------------------------------------------------------------------------------
# The CPU kernel switches to a k-d tree at n >= 256, d <= 8, and otherwise scans blocks of 4 to 32
# points; the CUDA one tiles 32 points.

NN_SIZES = (15, 17, 31, 33, 255, 256, 300)
NN_DIMS = (16, 33, 64)


@st.composite
def nn_inputs(draw, overflow: bool = False):
    dtype = draw(float_dtypes())
    n, d = draw(sizes(12, NN_SIZES)), draw(st.one_of(st.integers(1, 10), st.sampled_from(NN_DIMS)))
    limit = torch.finfo(dtype).max / 4 if overflow else safe_limit(dtype, d)
    kinds = ("huge",) if overflow else KINDS
    x = draw(point_values(n, d, dtype, kinds=kinds, limit=limit))
    return x, draw(layouts(2)), draw(seeds())


def check_nearest(device, x, layout, seed):
    got = ops.nearest_neighbor(lay_out(x.to(device), layout), seed)
    want = reference.nearest_neighbor(lay_out(x, layout), seed)
    assert got.dtype == torch.int64 and got.shape == (x.shape[0],) and got.device.type == device
    rows = torch.arange(x.shape[0])
    assert (got.cpu() != rows).all(), "a row is its own neighbour (kernel)"
    assert (want != rows).all(), "a row is its own neighbour (twin)"
    assert torch.equal(got.cpu(), want)


@on_devices
@given(case=nn_inputs())
def test_nearest_neighbor_matches_twin(device, case):
    """The same neighbour of every row, ties included (broken by the seed), never the row itself."""
    check_nearest(device, *case)


@on_devices
@example(case=(torch.tensor([[0.0], [1e20]]), "contiguous", 1))  # the twin answers [0, 1]
@given(case=nn_inputs(overflow=True))
def test_nearest_neighbor_matches_twin_when_distances_overflow(device, case):
    check_nearest(device, *case)


NN_DEFECTS = ("dtype", "non-finite", "one row", "no column", "1-d", "3-d")


@on_devices
@given(data=st.data(), defect=st.sampled_from(NN_DEFECTS))
def test_nearest_neighbor_refuses_bad_x(device, data, defect):
    dtype = data.draw(float_dtypes())
    n, d = data.draw(st.integers(2, 8)), data.draw(st.integers(1, 4))
    x = data.draw(values((n, d), dtype))
    if defect == "dtype":
        x = x.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "non-finite":
        x = with_bad_value(x, data.draw(st.integers(0, n * d - 1)), data.draw(non_finite()))
    elif defect == "one row":
        x = x[:1]
    elif defect == "no column":
        x = x[:, :0]
    elif defect == "1-d":
        x = x[:, 0]
    else:
        x = x[:, :, None]
    both_refuse("nearest_neighbor", (x, data.draw(seeds())), word("x"), device)


# codec ------------------------------------------------------------------------------------------


@st.composite
def codec_inputs(draw, overflow: bool = False):
    dtype = draw(float_dtypes())
    n, q, p = draw(sizes(12, (33, 256, 300))), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    limit = torch.finfo(dtype).max / 4 if overflow else safe_limit(dtype, p + q)
    kinds = ("huge",) if overflow else KINDS
    y = draw(responses(n))
    z = draw(point_values(n, q, dtype, kinds=kinds, limit=limit))
    x = draw(point_values(n, p, dtype, kinds=kinds, limit=limit)) if p else None
    lay = (draw(layouts(1)), draw(layouts(2)), draw(layouts(2)))
    return y, z, x, lay, draw(seeds())


def check_codec(device, y, z, x, lay, seed):
    def args(dev):
        xs = None if x is None else lay_out(x.to(dev), lay[2])
        return lay_out(y.to(dev), lay[0]), lay_out(z.to(dev), lay[1]), xs

    got = ops.codec(*args(device), seed)
    want = reference.codec(*args("cpu"), seed)
    assert got.dtype == z.dtype and got.dim() == 0 and got.device.type == device
    tol = 1e-9 if device == "cpu" else TOL[z.dtype]
    assert abs(float(got) - float(want)) <= tol, (float(got), float(want))


@on_devices
@given(case=codec_inputs())
def test_codec_matches_twin(device, case):
    """T(y, z | x) and T(y, z) as the twin computes them: exact rank sums, one ratio."""
    check_codec(device, *case)


@on_devices
@example(case=(torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [1e20]]), None, ("contiguous",) * 3, 1))  # -1 vs 1
@given(case=codec_inputs(overflow=True))
def test_codec_matches_twin_when_distances_overflow(device, case):
    check_codec(device, *case)


# (argument changed, the name the refusal must give)
CODEC_DEFECTS = {
    "y dtype": "y",
    "y non-finite": "y",
    "y constant": "y",
    "y length": "y",
    "y 2-d": "y",
    "z dtype": "z",
    "z non-finite": "z",
    "z one row": "z",
    "z 3-d": "z",
    "x dtype": "x",
    "x non-finite": "x",
    "x rows": "x",
    "x dtype differs from z": "x",
}


@on_devices
@given(data=st.data(), defect=st.sampled_from(sorted(CODEC_DEFECTS)))
def test_codec_refuses_bad_input(device, data, defect):
    dtype = data.draw(float_dtypes())
    n = data.draw(st.integers(3, 10))
    y = data.draw(responses(n))
    z = data.draw(point_values(n, data.draw(st.integers(1, 3)), dtype))
    x = data.draw(point_values(n, data.draw(st.integers(1, 3)), dtype))
    where = data.draw(st.integers(0, 1000))
    if defect == "y dtype":
        y = y.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "y non-finite":
        y = with_bad_value(y, where, data.draw(non_finite()))
    elif defect == "y constant":
        y = torch.full_like(y, data.draw(st.floats(-1e6, 1e6)))
    elif defect == "y length":
        y = y[: data.draw(st.integers(0, n - 1))] if data.draw(st.booleans()) else torch.cat([y, y[:1]])
    elif defect == "y 2-d":
        y = y[:, None].expand(n, 2)
    elif defect == "z dtype":
        z = z.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "z non-finite":
        z = with_bad_value(z, where, data.draw(non_finite()))
    elif defect == "z one row":
        y, z, x = y[:1], z[:1], x[:1]
    elif defect == "z 3-d":
        z = z[:, :, None]
    elif defect == "x dtype":
        x = x.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "x non-finite":
        x = with_bad_value(x, where, data.draw(non_finite()))
    elif defect == "x rows":
        x = x[: data.draw(st.integers(2, n - 1))]
    else:
        x = x.to(torch.float32 if dtype == torch.float64 else torch.float64)
    both_refuse("codec", (y, z, x, data.draw(seeds())), word(CODEC_DEFECTS[defect]), device)


# codec_select -----------------------------------------------------------------------------------
# n > 129 gives the row scans their tiers of candidates (codec_rows.h).


@st.composite
def select_inputs(draw, overflow: bool = False):
    dtype = draw(float_dtypes())
    n, p = draw(sizes(14, (33, 130, 140))), draw(st.integers(1, 6))
    limit = torch.finfo(dtype).max / 4 if overflow else safe_limit(dtype, p)
    kinds = ("huge",) if overflow else KINDS
    y = draw(responses(n))
    f = draw(point_values(n, p, dtype, kinds=kinds, limit=limit))
    if n > 20:  # the twin is a dense search: few picks at large n
        p = min(p, 4)
        f = f[:, :p]
    full = n * n * f.element_size()
    cache = draw(st.one_of(st.sampled_from([0, full - 1, full, INT64_MAX]), int64s(0, INT64_MAX)))
    k = draw(st.integers(1, p))
    lay = (draw(layouts(1)), draw(layouts(2)))
    return y, f, k, draw(st.booleans()), draw(seeds()), cache, lay


def check_select(device, y, f, k, stop_early, seed, cache, lay):
    got = ops.codec_select(lay_out(y.to(device), lay[0]), lay_out(f.to(device), lay[1]), k, stop_early, seed, cache)
    want = reference.codec_select(lay_out(y, lay[0]), lay_out(f, lay[1]), k, stop_early, seed, cache)
    assert got[0].dtype == torch.int64 and got[0].shape == (k,) and got[1].dtype == f.dtype and got[1].shape == (k,)
    assert torch.equal(got[0].cpu(), want[0]), (got, want)
    tol = 1e-9 if device == "cpu" else TOL[f.dtype]
    torch.testing.assert_close(got[1].cpu(), want[1], rtol=0, atol=tol, equal_nan=True)


@on_devices
@given(case=select_inputs())
def test_codec_select_matches_twin(device, case):
    """The same picks in the same order (ties broken by the seed), the same scores, the same -1/NaN padding."""
    check_select(device, *case)


@on_devices
@example(case=(torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [1e20]]), 1, False, 1, 0, ("contiguous",) * 2))
@given(case=select_inputs(overflow=True))
def test_codec_select_matches_twin_when_distances_overflow(device, case):
    check_select(device, *case)


SELECT_DEFECTS = {
    "y dtype": "y",
    "y non-finite": "y",
    "y constant": "y",
    "y length": "y",
    "features dtype": "features",
    "features non-finite": "features",
    "features one row": "features",
    "features 1-d": "features",
    "max_select": "max_select",
    "max_cache_bytes": "max_cache_bytes",
}


@on_devices
@given(data=st.data(), defect=st.sampled_from(sorted(SELECT_DEFECTS)))
def test_codec_select_refuses_bad_input(device, data, defect):
    dtype = data.draw(float_dtypes())
    n, p = data.draw(st.integers(3, 10)), data.draw(st.integers(1, 4))
    y = data.draw(responses(n))
    f = data.draw(point_values(n, p, dtype))
    k, cache = data.draw(st.integers(1, p)), data.draw(int64s(0, INT64_MAX))
    where = data.draw(st.integers(0, 1000))
    if defect == "y dtype":
        y = y.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "y non-finite":
        y = with_bad_value(y, where, data.draw(non_finite()))
    elif defect == "y constant":
        y = torch.zeros_like(y)
    elif defect == "y length":
        y = y[:-1]
    elif defect == "features dtype":
        f = f.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "features non-finite":
        f = with_bad_value(f, where, data.draw(non_finite()))
    elif defect == "features one row":
        y, f = y[:1], f[:1]
    elif defect == "features 1-d":
        f, k = f[:, 0], 1
    elif defect == "max_select":
        k = data.draw(st.one_of(int64s(INT64_MIN, 0), int64s(p + 1, INT64_MAX)))
    else:
        cache = data.draw(int64s(INT64_MIN, -1))
    args = (y, f, k, data.draw(st.booleans()), data.draw(seeds()), cache)
    both_refuse("codec_select", args, word(SELECT_DEFECTS[defect]), device)


# codec_step (a CPU kernel only) -----------------------------------------------------------------


def block_cache(selected: torch.Tensor, begin: int, end: int) -> torch.Tensor:
    """Rows [begin, end) of D_S, the selected columns' squared differences added in order."""
    cache = torch.zeros(end - begin, selected.shape[0], dtype=selected.dtype)
    for c in selected.unbind(1):
        cache = cache + (c[begin:end, None] - c[None, :]).square()
    return cache


@st.composite
def step_inputs(draw, overflow: bool = False):
    dtype = draw(float_dtypes())
    n, s, q = draw(sizes(14, (33, 130, 140))), draw(st.integers(0, 3)), draw(st.integers(1, 4))
    limit = torch.finfo(dtype).max / 4 if overflow else safe_limit(dtype, s + 1)
    kinds = ("huge",) if overflow else KINDS
    y = draw(responses(n))
    f = draw(point_values(n, s + q, dtype, kinds=kinds, limit=limit))
    y = lay_out(y, draw(layouts(1)))
    candidates, selected = lay_out(f[:, s:], draw(layouts(2))), lay_out(f[:, :s], draw(layouts(2)))
    begin = draw(st.integers(0, n - 1))
    end = draw(st.integers(begin + 1, n))
    cache_kind = draw(st.sampled_from(["none", "exact", "any"]))
    cache = None
    if cache_kind == "exact":
        cache = block_cache(selected, begin, end)
    elif cache_kind == "any":  # any finite, non-negative D_S rows: the search is defined for every one
        cache = draw(values((end - begin, n), dtype, kinds=("normal", "grid", "tiny"))).abs()
    if cache is not None:
        cache = lay_out(cache, draw(layouts(2, expand=False)))
    return y, candidates, selected, begin, end, draw(seeds()), cache


def check_step(case):
    got, want = ops.codec_step(*case), reference.codec_step(*case)
    q = case[1].shape[1]
    assert got[0].dtype == torch.int64 and got[0].shape == (q,) and got[1].dtype == torch.int64 and got[1].dim() == 0
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (got, want)


@given(case=step_inputs())
def test_codec_step_matches_twin(case):
    """The integer sums of one FOCI step over a block of rows, with or without a cache."""
    check_step(case)


@example(case=(torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [1e20]]), torch.zeros(2, 0), 0, 2, 1, None))
@given(case=step_inputs(overflow=True))
def test_codec_step_matches_twin_when_distances_overflow(case):
    check_step(case)


@given(case=step_inputs(), cuts=st.lists(st.integers(1, 10**6), max_size=4))
def test_codec_step_row_blocks_add_up(case, cuts):
    """Sums over consecutive row blocks add up to the sums over all rows."""
    y, candidates, selected, _, _, seed, _ = case
    n = y.shape[0]
    bounds = sorted({0, n, *(c % n for c in cuts)})
    whole = ops.codec_step(y, candidates, selected, 0, n, seed, None)
    parts = [ops.codec_step(y, candidates, selected, a, b, seed, None) for a, b in zip(bounds, bounds[1:])]
    assert torch.equal(sum(p[0] for p in parts), whole[0]) and torch.equal(sum(p[1] for p in parts), whole[1])


STEP_DEFECTS = {
    "candidates dtype": "candidates",
    "candidates non-finite": "candidates",
    "candidates one row": "candidates",
    "candidates 1-d": "candidates",
    "y constant": "y",
    "y non-finite": "y",
    "y length": "y",
    "selected 1-d": "selected",
    "selected rows": "selected",
    "selected dtype": "selected",
    "selected non-finite": "selected",
    "rows": "rows",
    "cache shape": "cache",
    "cache dtype": "cache",
}


@given(data=st.data(), defect=st.sampled_from(sorted(STEP_DEFECTS)))
def test_codec_step_refuses_bad_input(data, defect):
    dtype = data.draw(float_dtypes())
    n, s, q = data.draw(st.integers(3, 10)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    y = data.draw(responses(n))
    f = data.draw(point_values(n, s + q, dtype))
    candidates, selected = f[:, s:], f[:, :s]
    begin = data.draw(st.integers(0, n - 1))
    end = data.draw(st.integers(begin + 1, n))
    cache = block_cache(selected, begin, end) if data.draw(st.booleans()) else None
    where = data.draw(st.integers(0, 1000))
    if defect == "candidates dtype":
        candidates = candidates.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "candidates non-finite":
        candidates = with_bad_value(candidates, where, data.draw(non_finite()))
    elif defect == "candidates one row":
        y, candidates, selected, begin, end, cache = y[:1], candidates[:1], selected[:1], 0, 1, None
    elif defect == "candidates 1-d":
        candidates = candidates[:, 0]
    elif defect == "y constant":
        y = torch.full_like(y, 3.0)
    elif defect == "y non-finite":
        y = with_bad_value(y, where, data.draw(non_finite()))
    elif defect == "y length":
        y = torch.cat([y, y[:1]])
    elif defect == "selected 1-d":
        selected = selected[:, 0]
    elif defect == "selected rows":
        selected = selected[: data.draw(st.integers(0, n - 1))]
    elif defect == "selected dtype":
        selected = selected.to(torch.float32 if dtype == torch.float64 else torch.float64)
    elif defect == "selected non-finite":
        selected = with_bad_value(selected, where, data.draw(non_finite()))
    elif defect == "rows":
        begin, end = data.draw(int64s()), data.draw(int64s())
        assume(not 0 <= begin < end <= n)
        cache = None
    elif defect == "cache shape":
        rows, cols = end - begin, n
        shape = data.draw(st.sampled_from([(rows + 1, cols), (rows, cols - 1), (rows, cols, 1), (rows * cols,)]))
        cache = torch.zeros(shape, dtype=dtype)
    else:
        cache = block_cache(selected, begin, end).to(torch.float32 if dtype == torch.float64 else torch.float64)
    args = (y, candidates, selected, begin, end, data.draw(seeds()), cache)
    both_refuse("codec_step", args, word(STEP_DEFECTS[defect]))


# perturb ----------------------------------------------------------------------------------------


@st.composite
def perturb_inputs(draw):
    dtype = draw(float_dtypes())
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    x = draw(values(shape, dtype))
    big = torch.finfo(dtype).max / 64
    sigma = draw(
        st.one_of(
            st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e-30, 0.1, 1.0, 1e30, 1e300, big]),
            st.floats(0, big),
        )
    )
    copies = draw(st.integers(1, 6))
    return x, copies, sigma, draw(seeds()), draw(layouts(x.dim()))


@on_devices
@given(case=perturb_inputs())
def test_perturb_matches_twin(device, case):
    """x + sigma * e with the same counter-based e; sigma = 0 gives x exactly; the layout of x does not matter."""
    x, copies, sigma, seed, layout = case
    xd = lay_out(x.to(device), layout)
    got = ops.perturb(xd, copies, sigma, seed)
    want = reference.perturb(lay_out(x, layout), copies, sigma, seed)
    assert got.shape == (copies, *x.shape) and got.dtype == x.dtype and got.device.type == device
    assert torch.equal(got, ops.perturb(xd.contiguous(), copies, sigma, seed))
    got = got.cpu()
    if sigma == 0:
        assert torch.equal(got, want) and torch.equal(got, lay_out(x, layout).expand_as(got))
    assert torch.equal(torch.isfinite(got), torch.isfinite(want)) and torch.equal(got.isinf(), want.isinf())
    finite = torch.isfinite(want)
    eps, tiny = torch.finfo(x.dtype).eps, torch.finfo(x.dtype).smallest_normal
    bound = 8 * eps * (lay_out(x, layout).expand_as(want).abs() + (want - lay_out(x, layout)).abs()) + tiny * eps * 4
    assert ((got - want).abs()[finite] <= bound[finite]).all(), float((got - want).abs()[finite].max())


PERTURB_DEFECTS = {"x dtype": "x", "x 0-d": "x", "x empty": "x", "copies": "copies", "sigma": "sigma"}


@on_devices
@given(data=st.data(), defect=st.sampled_from(sorted(PERTURB_DEFECTS)))
def test_perturb_refuses_bad_input(device, data, defect):
    dtype = data.draw(float_dtypes())
    x = data.draw(values((data.draw(st.integers(1, 4)), 3), dtype))
    copies, sigma = data.draw(st.integers(1, 4)), data.draw(st.floats(0, 10))
    if defect == "x dtype":
        x = x.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "x 0-d":
        x = x[0, 0]
    elif defect == "x empty":
        x = x[:0]
    elif defect == "copies":
        copies = data.draw(int64s(INT64_MIN, 0))
    else:
        sigma = data.draw(st.one_of(non_finite(), st.floats(max_value=-1e-320)))
    both_refuse("perturb", (x, copies, sigma, data.draw(seeds())), word(PERTURB_DEFECTS[defect]), device)


@given(data=st.data())
def test_perturb_refuses_copies_too_many_to_address(data):
    dtype = data.draw(float_dtypes())
    x = torch.zeros(data.draw(st.integers(1, 6)), dtype=dtype)
    least = -(-(2**63) // (x.numel() * x.element_size()))
    copies = data.draw(int64s(least, INT64_MAX))
    both_refuse("perturb", (x, copies, 0.5, 0), word("copies"))


# channel_means ----------------------------------------------------------------------------------


@st.composite
def channel_inputs(draw):
    dtype = draw(float_dtypes())
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    shape = (n, c, *draw(st.lists(st.integers(1, 5), max_size=2)))
    limit = 1e300 if dtype == torch.float64 else None  # float64 sums stay finite
    act = draw(values(shape, dtype, limit=limit))
    width = c + draw(st.integers(0, 4))
    column = draw(st.integers(0, width - c))
    out = draw(values((n, width), dtype, kinds=("normal", "grid")))
    return act, out, column, draw(layouts(act.dim())), draw(layouts(2, expand=False))


@on_devices
@given(case=channel_inputs())
def test_channel_means_matches_twin(device, case):
    """Means into columns [column, column + C) of out, through out's strides; nothing else is written."""
    act, out, column, act_layout, out_layout = case
    got_out, want_out = lay_out(out.to(device), out_layout), lay_out(out, out_layout)
    assert ops.channel_means(lay_out(act.to(device), act_layout), got_out, column) is None
    reference.channel_means(lay_out(act, act_layout), want_out, column)
    c = act.shape[1]
    if out_layout == "sliced":  # the elements between out's own are untouched
        padding = torch.ones(got_out._base.shape, dtype=torch.bool)
        padding[1::2, 1::2] = False
        assert got_out._base.cpu()[padding].isnan().all()
    got_out = got_out.cpu()
    written = torch.zeros(out.shape, dtype=torch.bool)
    written[:, column : column + c] = True
    assert torch.equal(got_out[~written], out[~written]) and torch.equal(want_out[~written], out[~written])
    # float64 sums in another order: a few units of float64 rounding per position, then one of dtype's.
    a = lay_out(act, act_layout).double()
    positions = a[0, 0].numel()
    amax = a.abs().reshape(a.shape[0], c, -1).amax(dim=2)
    got_w, want_w = got_out[:, column : column + c].double(), want_out[:, column : column + c].double()
    eps, tiny = torch.finfo(act.dtype).eps, torch.finfo(act.dtype).smallest_normal
    bound = 4 * positions * 2.0**-52 * amax + 2 * eps * want_w.abs() + tiny * eps * 4
    assert ((got_w - want_w).abs() <= bound).all(), (got_w, want_w)


CHANNEL_DEFECTS = {
    "act dtype": "act",
    "act 1-d": "act",
    "act empty": "act",
    "out 1-d": "out",
    "out rows": "out",
    "out dtype": "out",
    "column negative": "column",
    "column past the end": "column",
}


@on_devices
@given(data=st.data(), defect=st.sampled_from(sorted(CHANNEL_DEFECTS)))
def test_channel_means_refuses_bad_input(device, data, defect):
    """Refused with ValueError naming the argument, and out left as it was."""
    dtype = data.draw(float_dtypes())
    n, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    act = data.draw(values((n, c, data.draw(st.integers(1, 3))), dtype))
    width = c + data.draw(st.integers(0, 3))
    out = torch.full((n, width), 7.0, dtype=dtype)
    column = data.draw(st.integers(0, width - c))
    if defect == "act dtype":
        act = act.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "act 1-d":
        act = act[:, 0, 0]
    elif defect == "act empty":
        act = act[:, :, :0]
    elif defect == "out 1-d":
        out = out[0]
    elif defect == "out rows":
        out = torch.full((n + data.draw(st.sampled_from([-n, -1, 1, 5])), width), 7.0, dtype=dtype)
        assume(out.shape[0] != n)
    elif defect == "out dtype":
        out = out.to(data.draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64])))
        assume(out.dtype != dtype)
    elif defect == "column negative":
        column = data.draw(int64s(INT64_MIN, -1))
    else:  # past the end, but small enough that column + C fits in int64 (see the isolated test below)
        column = data.draw(int64s(width - c + 1, INT64_MAX - c))
    for fn, dev in ((ops.channel_means, device), (reference.channel_means, "cpu")):
        target = out.to(dev)
        with pytest.raises(ValueError, match=word(CHANNEL_DEFECTS[defect])):
            fn(act.to(dev), target, column)
        assert torch.equal(target.cpu(), out)


@on_devices
@given(case=channel_inputs())
def test_channel_means_refuses_overlapping_out(device, case):
    """An out with overlapping elements is refused (ValueError naming out) and left as it was."""
    act, out, column, act_layout, _ = case
    assume(out.shape[0] > 1)
    for fn, dev in ((ops.channel_means, device), (reference.channel_means, "cpu")):
        row = out[:1].to(dev)
        with pytest.raises(ValueError, match=word("out")):
            fn(lay_out(act.to(dev), act_layout), row.expand(out.shape), column)
        assert torch.equal(row.cpu(), out[:1])


# block_solve ------------------------------------------------------------------------------------
# Well-conditioned blocks (damping comparable to the blocks' scale) agree to a tolerance set by
# the blocks' condition numbers. The kernel and its twin share their algorithm (Woodbury for a
# factor with m < d, so that both refuse alike); a dense float64 solve in the test checks both.

SCALES = {torch.float64: [1e-10, 1.0, 1e10], torch.float32: [1e-3, 1.0, 1e3]}
# Scales far from 1, where intermediate products of the two methods may under- or overflow.
EXTREME_SCALES = {torch.float64: [1e-100, 1e-60, 1e60, 1e100], torch.float32: [1e-12, 1e-8, 1e8, 1e12]}


@st.composite
def solve_inputs(draw, damping_strategy=None, extreme: bool = False):
    g_dtype = draw(float_dtypes())
    scale = draw(st.sampled_from((EXTREME_SCALES if extreme else SCALES)[g_dtype]))
    block_dtypes = [g_dtype, torch.float32] if g_dtype == torch.float32 or abs(math.log10(scale)) <= 12 else [g_dtype]
    count = draw(st.integers(1, 4))
    shapes = draw(st.lists(st.tuples(st.booleans(), st.integers(1, 8), st.integers(1, 6)), min_size=1, max_size=3))
    blocks, low_rank, block_scales = [], [], []
    for _ in range(count):
        factored, m, d = draw(st.sampled_from(shapes))  # repeated shapes: the kernel batches them
        dtype = draw(st.sampled_from(block_dtypes))
        if factored:
            u = draw(moderate((m, d), torch.float64, 1e-3, 3.0))
            u = lay_out(u, draw(layouts(2)))
            blocks.append(u * scale)
            block_scales.append(float((u * u).sum()) / max(m * d, 1))
        else:
            b = draw(moderate((d, d), torch.float64, 1e-3, 3.0))
            a = b @ b.T / d + draw(st.floats(0.25, 4.0)) * torch.eye(d, dtype=torch.float64)
            blocks.append(a * scale**2)
            block_scales.append(float(a.diagonal().mean()))
        low_rank.append(factored)
        blocks[-1] = blocks[-1].to(dtype)
    blocks = [lay_out(b, draw(layouts(2, expand=False))) for b in blocks]
    if damping_strategy is None:
        damping = draw(st.floats(0.05, 20.0)) * max(block_scales + [1e-3]) * scale**2
        if all(not f for f in low_rank) and draw(st.booleans()):
            damping = 0.0
    else:
        damping = draw(damping_strategy)
    total = sum(b.shape[1] for b in blocks)
    if extreme:  # tiny to large right-hand sides; the solution stays finite
        g = draw(values((total,), g_dtype, kinds=("normal", "grid", "tiny"), limit=1e6))
    else:
        g = draw(moderate((total,), g_dtype))
    g = lay_out(g, draw(layouts(1)))
    return blocks, g, float(damping), low_rank


def solve_tolerance(blocks, g, damping, low_rank) -> list[float]:
    """Per block, the relative error two sound solves may differ by: a few
    hundred units of rounding times the damped block's condition number."""
    tols = []
    for a, factored in zip(blocks, low_rank):
        h = a.double()
        h = h.T @ h / h.shape[0] if factored else h
        ev = torch.linalg.eigvalsh((h + h.T) / 2).clamp(min=0)
        kappa = float((ev.max() + damping) / (ev.min() + damping)) if float(ev.min()) + damping > 0 else math.inf
        eps = torch.finfo(torch.float32 if a.dtype == torch.float32 else g.dtype).eps
        tols.append(300 * kappa * eps)
    return tols


def check_solve(device, blocks, g, damping, low_rank):
    got = ops.block_solve(to_device(blocks, device) if device != "cpu" else blocks, g.to(device), damping, low_rank)
    want = reference.block_solve(blocks, g, damping, low_rank)
    assert got.dtype == g.dtype and got.shape == g.shape and got.device.type == device
    got = got.cpu()
    assert torch.isfinite(got).all() and torch.isfinite(want).all(), (got, want)
    assert_solutions_agree(got, want, blocks, solve_tolerance(blocks, g, damping, low_rank))


def assert_solutions_agree(got, want, blocks, tolerances) -> None:
    """Block by block, within its relative tolerance (none asked past 0.1)."""
    offset = 0
    for a, tol in zip(blocks, tolerances):
        d = a.shape[1]
        x, ref = got[offset : offset + d].double(), want[offset : offset + d].double()
        if tol < 0.1:
            assert float((x - ref).abs().max()) <= tol * float(ref.abs().max()) + 1e-300, (x, ref, tol)
        offset += d


@on_devices
@given(case=solve_inputs())
def test_block_solve_matches_twin(device, case):
    """(A_b + damping I) x_b = g_b block by block, dense and low-rank blocks, float32 blocks with a float64 g:
    the kernel against its twin, and against dense float64 solves."""
    check_solve(device, *case)
    assert_solutions_agree(ops.block_solve(*case), dense_solution(*case), case[0], solve_tolerance(*case))


@on_devices
@example(
    case=(
        [torch.tensor([[1e-100, 0.0]], dtype=torch.float64)],
        torch.tensor([2.2e-309, 0.0], dtype=torch.float64),
        1e-200,
        [True],
    )
)
@given(case=solve_inputs(extreme=True))
def test_block_solve_matches_twin_at_extreme_scales(device, case):
    check_solve(device, *case)


EXTREME_DAMPING = st.one_of(
    st.sampled_from([5e-324, 1e-320, 1e-310, 1e-300, 1e-200, 1e-100, 1e-30, 1e-16, 1e100, 1e200, 1e300, 1.7e308]),
    st.floats(5e-324, 1.7e308),
)


@example(case=([torch.tensor([[1.0, 1.0]], dtype=torch.float64)], torch.ones(2, dtype=torch.float64), 1e-30, [True]))
@example(case=([torch.zeros(1, 1, dtype=torch.float64)], torch.zeros(1, dtype=torch.float64), 5e-324, [True]))
@example(case=([torch.zeros(1, 3), torch.zeros(1, 3)], torch.zeros(6), 1e100, [True, True]))
@given(case=solve_inputs(damping_strategy=EXTREME_DAMPING))
def test_block_solve_extreme_damping_agrees_or_is_refused(case):
    """Either both refuse (ValueError) or both return finite solutions that agree as far as conditioning allows."""
    blocks, g, damping, low_rank = case
    outcomes = []
    for fn in (ops.block_solve, reference.block_solve):
        try:
            outcomes.append(fn(blocks, g, damping, low_rank))
        except ValueError as e:
            outcomes.append(e)
    note(f"kernel: {outcomes[0]!r}\ntwin: {outcomes[1]!r}")
    refused = [isinstance(o, ValueError) for o in outcomes]
    assert refused[0] == refused[1]
    if not refused[0]:
        check_solve("cpu", blocks, g, damping, low_rank)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_solve_small_factor_near_the_rounding_of_its_damping_is_solved_or_refused_by_both(gen, dtype):
    """A factor with m < d, its damping swept from far above to below the
    rounding of its largest diagonal entry: both refuse with one message, or
    both solve and agree. (Below d eps times that entry the twin's Cholesky
    of U^T U failed on rounding noise where the kernel's Woodbury solve
    returned.)"""
    u = torch.randn(30, 200, generator=gen, dtype=dtype)
    g = torch.randn(200, generator=gen, dtype=torch.float64)
    largest = float((u.double().square().sum(0) / 30).max())
    for k in range(16, 58):
        args = ([u], g, largest * 2.0**-k, [True])
        outcomes = []
        for fn in (ops.block_solve, reference.block_solve):
            try:
                outcomes.append(fn(*args))
            except ValueError as e:
                outcomes.append(str(e))
        assert isinstance(outcomes[0], str) == isinstance(outcomes[1], str), (k, outcomes)
        if isinstance(outcomes[0], str):
            assert outcomes[0] == outcomes[1]
        else:
            check_solve("cpu", *args)


SOLVE_DEFECTS = {
    "no blocks": "blocks",
    "low_rank length": "low_rank",
    "damping": "damping",
    "g 2-d": "g",
    "g dtype": "g",
    "g length": "g",
    "g non-finite": "g",
    "block shape": "block 0",
    "dense not square": "block 0",
    "block dtype": "block 0",
    "block non-finite": "block 0",
    "no damping for a small factor": "block 0",
    "dense not positive definite": "block 0",
}


@on_devices
@given(data=st.data(), defect=st.sampled_from(sorted(SOLVE_DEFECTS)))
def test_block_solve_refuses_bad_input(device, data, defect):
    dtype = data.draw(float_dtypes())
    d, m = data.draw(st.integers(2, 5)), data.draw(st.integers(1, 6))
    u = data.draw(values((m, d), dtype, kinds=("normal", "grid"), limit=3.0))
    dense = torch.eye(3, dtype=dtype) * 2
    blocks, low_rank = [u, dense], [True, False]
    g = data.draw(values((d + 3,), dtype, kinds=("normal", "grid"), limit=10.0))
    damping = data.draw(st.floats(0.1, 10.0))
    where = data.draw(st.integers(0, 1000))
    if defect == "no blocks":
        blocks, low_rank = [], []
    elif defect == "low_rank length":
        low_rank = low_rank + [True] if data.draw(st.booleans()) else low_rank[:1]
    elif defect == "damping":
        damping = data.draw(st.one_of(non_finite(), st.floats(max_value=-1e-320)))
    elif defect == "g 2-d":
        g = g[:, None]
    elif defect == "g dtype":
        g = g.clamp(-100, 100).to(data.draw(bad_dtypes()))
    elif defect == "g length":
        g = g[:-1] if data.draw(st.booleans()) else torch.cat([g, g[:1]])
    elif defect == "g non-finite":
        g = with_bad_value(g, where, data.draw(non_finite()))
    elif defect == "block shape":
        blocks[0] = data.draw(st.sampled_from([u[0], u[:0], u[:, :0], u[None]]))
    elif defect == "dense not square":
        blocks, low_rank = [u[:, :1].expand(m, m + 1)], [False]
        g = g[: m + 1] if g.shape[0] >= m + 1 else torch.zeros(m + 1, dtype=dtype)
    elif defect == "block dtype":
        blocks[0] = u.to(data.draw(st.sampled_from([torch.float64, torch.float16, torch.int64])))
        assume(blocks[0].dtype not in (dtype, torch.float32))
    elif defect == "block non-finite":
        blocks[0] = with_bad_value(u, where, data.draw(non_finite()))
    elif defect == "no damping for a small factor":
        blocks[0], damping = u[:1].expand(d - 1, d), 0.0
    else:
        blocks, low_rank, g = [-dense], [False], g[:3]
        damping = data.draw(st.floats(0, 1.5))
    both_refuse("block_solve", (blocks, g, damping, low_rank), word(SOLVE_DEFECTS[defect]), device)


# Python ints beyond int64 through the typed wrappers ----------------------------------------------

_F = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
_Y = torch.tensor([0.0, 1.0, 3.0, 2.0], dtype=torch.float64)
WRAPPER_CALLS = {
    ("nearest_neighbor", "seed"): lambda v: unlearn.ops.nearest_neighbor(_F, seed=v),
    ("codec", "seed"): lambda v: unlearn.ops.codec(_Y, _F, seed=v),
    ("codec_select", "max_select"): lambda v: unlearn.ops.codec_select(_Y, _F, v),
    ("codec_select", "seed"): lambda v: unlearn.ops.codec_select(_Y, _F, 1, seed=v),
    ("codec_select", "max_cache_bytes"): lambda v: unlearn.ops.codec_select(_Y, _F, 1, max_cache_bytes=v),
    ("codec_step", "row_begin"): lambda v: unlearn.ops.codec_step(_Y, _F, _F[:, :0], v, 4),
    ("codec_step", "row_end"): lambda v: unlearn.ops.codec_step(_Y, _F, _F[:, :0], 0, v),
    ("codec_step", "seed"): lambda v: unlearn.ops.codec_step(_Y, _F, _F[:, :0], 0, 4, seed=v),
    ("perturb", "copies"): lambda v: unlearn.ops.perturb(_Y, v, 0.1),
    ("perturb", "seed"): lambda v: unlearn.ops.perturb(_Y, 2, 0.1, seed=v),
    ("channel_means", "column"): lambda v: unlearn.ops.channel_means(_F[:, :, None], _F.new_zeros(4, 3), v),
}


@pytest.mark.parametrize("op_arg", sorted(WRAPPER_CALLS), ids="-".join)
@given(value=beyond_int64())
def test_wrappers_refuse_ints_beyond_int64(op_arg, value):
    with pytest.raises(ValueError, match=word(op_arg[1])):
        WRAPPER_CALLS[op_arg](value)


@pytest.mark.parametrize("op_arg", sorted(WRAPPER_CALLS), ids="-".join)
@given(value=beyond_int64())
def test_ints_beyond_int64_never_reach_a_kernel(op_arg, value):
    """Whatever the exception, such a value is not wrapped into int64 and used."""
    with pytest.raises((ValueError, RuntimeError, OverflowError, TypeError)):
        WRAPPER_CALLS[op_arg](value)


# Inputs that crash or hang today's kernels, each run in a child process ------------------------------

_CHILD = r"""
import json, sys
import torch, unlearn
from unlearn.ops import reference

def emit(**kw):
    print(json.dumps(kw), flush=True)

def plain(v):
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, (tuple, list)):
        return [plain(t) for t in v]
    return v

cases = torch.load(sys.argv[1], weights_only=False)
emit(ready=True)
for i in range(int(sys.argv[2]), len(cases)):
    name, args = cases[i]
    for impl in ("kernel", "twin"):
        fn = getattr(torch.ops.unlearn if impl == "kernel" else reference, name)
        given = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        emit(case=i, impl=impl, started=True)
        try:
            value = fn(*given)
            result, message = "returned", repr(value)[:300]
        except Exception as e:
            result, message = type(e).__name__, str(e)
        changed = [k for k, (a, b) in enumerate(zip(args, given))
                   if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(), b.nan_to_num())]
        emit(case=i, impl=impl, result=result, message=message, changed=changed)
"""

_STARTUP_S, _CASE_S = 300.0, 5.0


def _limit_child() -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort leaves no core file


def _pump(stream, lines: queue.Queue) -> None:
    """Puts each line of `stream` into `lines`, then None at its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_isolated(cases: list[tuple[str, tuple]], keep_going: bool = THOROUGH) -> dict:
    """Runs each (op name, args) with the compiled op and with the twin in a
    child process; returns {(case, impl): outcome}, where an outcome is what the
    call returned or raised, or a crash (the child died) or a hang (no answer
    within _CASE_S seconds; the child is killed). After a crash or hang a new
    child takes the next case, or with keep_going=False the run stops there."""
    outcomes: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cases.pt")
        torch.save(cases, path)
        start = 0
        while start < len(cases):
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, path, str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp,
                preexec_fn=_limit_child,
            )
            lines: queue.Queue = queue.Queue()
            threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True).start()
            running, last, timeout, fault = None, start, _STARTUP_S, None
            while True:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    child.kill()
                    fault = {"result": "hang", "message": f"no answer within {_CASE_S} s"}
                    break
                if line is None:
                    code = child.wait()
                    if code != 0:
                        tail = child.stderr.read()[-300:]
                        fault = {"result": "crash", "message": f"the child died with status {code}: {tail}"}
                        outcomes.setdefault("startup", fault)
                    break
                event = json.loads(line)
                timeout = _CASE_S
                if event.get("started"):
                    running, last = (event["case"], event["impl"]), event["case"]
                elif "result" in event:
                    outcomes[(event["case"], event["impl"])] = event
                    running = None
            child.wait()
            child.stdout.close()
            child.stderr.close()
            if fault is None:
                break
            # A crash may come after a call returned (a corrupted heap fails a later free): it is then
            # charged to the next call of that case.
            if running is None:
                fault["message"] = "after the previous call returned, " + fault["message"]
            outcomes.setdefault(running or (last, "twin"), fault)
            if not keep_going:
                break
            start = last + 1
    return outcomes


def assert_all_refused(cases, outcomes, match: str, unchanged: bool = False) -> None:
    """Every case ran, and the kernel and the twin each raised ValueError
    matching `match` (and, with `unchanged`, wrote nothing into their inputs)."""
    faults = []
    for i, (name, args) in enumerate(cases):
        for impl in ("kernel", "twin"):
            got = outcomes.get((i, impl), {"result": "not run (an earlier case crashed or hung)"})
            ok = got["result"] == "ValueError" and bool(re.search(match, got.get("message", "")))
            if unchanged and got.get("changed"):
                ok = False
            if not ok:
                shown = {k: v for k, v in got.items() if k in ("result", "message", "value", "changed")}
                faults.append(f"{name} case {i} ({describe(args)}), {impl}: {shown}")
    if "startup" in outcomes and not any(k != "startup" for k in outcomes):
        faults.append(f"the child process failed to start: {outcomes['startup']}")
    assert not faults, "\n".join(faults)


def describe(args) -> str:
    return ", ".join(
        f"tensor{tuple(a.shape)} {str(a.dtype)[6:]}" if isinstance(a, torch.Tensor) else repr(a) for a in args
    )


# These run once per session (a child process costs a second or more); the
# random cases come from the `gen` fixture, replayable with UNLEARN_TEST_SEED.


def test_channel_means_refuses_columns_past_int64_isolated(gen):
    """Columns whose end would pass 2**63 - 1 are refused (ValueError naming column), out left as it was."""
    cases = []
    for extra in (0, 1, 2):
        act = torch.randn(2, 3, 2, dtype=torch.float64, generator=gen)
        cases.append(("channel_means", (act, torch.zeros(2, 5, dtype=torch.float64), INT64_MAX - extra)))
    for dtype in (torch.float32, torch.float64):
        n, c = (int(v) for v in torch.randint(1, 7, (2,), generator=gen))
        act = torch.randn(n, c, 2, dtype=dtype, generator=gen)
        column = INT64_MAX - int(torch.randint(0, c, (1,), generator=gen))
        cases.append(("channel_means", (act, torch.zeros(n, c + 2, dtype=dtype), column)))
    assert_all_refused(cases, run_isolated(cases), word("column"), unchanged=True)


def test_codec_step_refuses_nan_and_negative_cache_isolated(gen):
    """A cache with NaN or -inf is refused (ValueError naming cache) by the kernel and the twin alike; +inf
    (squared differences past the dtype) is a valid distance, which tests/ops/test_codec_step.py covers."""
    cases = []
    y = torch.tensor([0.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    f = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    for bad in (float("nan"), float("-inf")):
        cases.append(("codec_step", (y, f[:, 1:], f[:, :1], 0, 4, 0, torch.full((4, 4), bad, dtype=torch.float64))))
    for dtype in (torch.float32, torch.float64):
        n = int(torch.randint(2, 12, (1,), generator=gen))
        y = torch.randn(n, dtype=dtype, generator=gen)
        f = torch.randint(0, 3, (n, 3), generator=gen).to(dtype)
        begin = int(torch.randint(0, n, (1,), generator=gen))
        end = int(torch.randint(begin + 1, n + 1, (1,), generator=gen))
        where = int(torch.randint(0, (end - begin) * n, (1,), generator=gen))
        for bad in (float("nan"), float("-inf")):
            cache = with_bad_value(block_cache(f[:, :1], begin, end), where, bad)
            cases.append(("codec_step", (y, f[:, 1:], f[:, :1], begin, end, 7, cache)))
    assert_all_refused(cases, run_isolated(cases), word("cache"))
