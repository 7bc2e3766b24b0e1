"""Hypothesis strategies shared by the op property tests (tests/ops/test_properties.py).

Tensors are described by their values (drawn on the CPU, contiguous) and a
layout (`lay_out`) applied afterwards on the device under test, so the same
values reach the compiled kernel as a contiguous, column-major, sliced or
expanded view while the twin sees them too. Small tensors draw every element
through Hypothesis (so failures shrink to readable numbers); larger ones draw a
generator seed and a scale.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

FLOATS = (torch.float32, torch.float64)
# Dtypes every op refuses for its float inputs.
BAD_DTYPES = (torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT64_EDGES = (INT64_MIN, INT64_MIN + 1, -(2**32), -1, 0, 1, 2**31 - 1, 2**32, INT64_MAX - 1, INT64_MAX)

# The value kinds of float tensors: ordinary numbers, a small integer grid
# (ties and duplicates), tiny magnitudes down to subnormals, huge magnitudes up
# to the call's overflow-safe limit, and columns of very different scales.
KINDS = ("normal", "grid", "tiny", "huge", "mixed")
# Elements drawn one by one up to this many; above it, from a torch generator.
ELEMENTWISE = 64


def float_dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from(FLOATS)


def bad_dtypes() -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from(BAD_DTYPES)


def int64s(min_value: int = INT64_MIN, max_value: int = INT64_MAX) -> st.SearchStrategy[int]:
    """Integers in [min_value, max_value] (within int64), the int64 edges often."""
    edges = [v for v in INT64_EDGES if min_value <= v <= max_value] + [min_value, max_value]
    return st.one_of(st.sampled_from(sorted(set(edges))), st.integers(min_value, max_value))


def seeds() -> st.SearchStrategy[int]:
    """Any int64 seed, the edges -2**63 and 2**63 - 1 included."""
    return int64s()


def beyond_int64() -> st.SearchStrategy[int]:
    """Python ints that no int64 holds."""
    return st.one_of(
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 2**64 + 1, -(2**64), 2**100, -(2**200)]),
        st.integers(min_value=2**63),
        st.integers(max_value=-(2**63) - 1),
    )


def safe_limit(dtype: torch.dtype, terms: int) -> float:
    """The largest magnitude whose pairwise squared differences, summed over
    `terms` columns, stay finite in `dtype` (with a margin for rounding)."""
    return 0.25 * math.sqrt(torch.finfo(dtype).max / max(terms, 1))


def _tiny(dtype: torch.dtype) -> float:
    """A bound well inside the subnormal-adjacent range of `dtype`."""
    return 1e-300 if dtype == torch.float64 else 1e-36


def _representable(x: float, dtype: torch.dtype) -> float:
    """`x` rounded towards zero to a value of `dtype`."""
    t = torch.tensor(x, dtype=dtype)
    if abs(float(t)) > abs(x):
        t = torch.nextafter(t, torch.zeros_like(t))
    return float(t)


def _element(kind: str, dtype: torch.dtype, limit: float) -> st.SearchStrategy[float]:
    width = 32 if dtype == torch.float32 else 64
    if kind == "grid":
        return st.integers(-2, 2).map(float)
    if kind == "tiny":
        bound = _representable(_tiny(dtype), dtype)
        return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    if kind == "huge":
        edge = _representable(limit, dtype)
        return st.one_of(
            st.sampled_from([edge, -edge, _representable(edge / 3, dtype), 0.0]),
            st.floats(-edge, edge, allow_nan=False, allow_infinity=False, width=width),
        )
    bound = _representable(min(1e3, limit), dtype)
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)


@st.composite
def values(draw, shape: tuple[int, ...], dtype: torch.dtype, kinds=KINDS, limit: float | None = None) -> torch.Tensor:
    """A contiguous CPU tensor of `shape` and `dtype` with finite values of one
    of `kinds`, every magnitude <= `limit` (default: the dtype's range)."""
    limit = float(torch.finfo(dtype).max) / 4 if limit is None else limit
    kind = draw(st.sampled_from(kinds))
    numel = math.prod(shape)
    if kind == "mixed":
        # Each trailing slice (column) gets its own scale.
        columns = shape[-1] if len(shape) > 1 else 1
        scales = draw(st.lists(st.sampled_from([0.0, 1e-30, 1e-6, 1.0, 1e6]), min_size=columns, max_size=columns))
        base = draw(values(shape, dtype, kinds=("normal", "grid"), limit=limit))
        scale = torch.tensor(scales, dtype=torch.float64)
        return (base.double() * (scale if len(shape) > 1 else scale[0])).clamp(-limit, limit).to(dtype)
    if numel <= ELEMENTWISE:
        elements = draw(st.lists(_element(kind, dtype, limit), min_size=numel, max_size=numel))
        return torch.tensor(elements, dtype=torch.float64).reshape(shape).to(dtype)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    if kind == "grid":
        return torch.randint(-2, 3, shape, generator=g).to(dtype)
    if kind == "tiny":
        scale = draw(st.sampled_from([_tiny(dtype), _tiny(dtype) * 1e-8, 1e-20]))
        return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    if kind == "huge":
        edge = limit * (1 - 1e-6)
        return ((torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * edge).to(dtype)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    return (torch.randn(shape, generator=g, dtype=torch.float64) * min(scale, limit / 8)).to(dtype)


def moderate(shape: tuple[int, ...], dtype: torch.dtype, low: float = 1e-6, high: float = 1e6):
    """A tensor whose elements are 0 or of magnitude in [low, high]: no
    products of them under- or overflow."""
    width = 32 if dtype == torch.float32 else 64
    magnitude = st.floats(_representable(low, dtype), _representable(high, dtype), width=width)
    element = st.one_of(st.just(0.0), magnitude, magnitude.map(lambda v: -v))
    return st.lists(element, min_size=math.prod(shape), max_size=math.prod(shape)).map(
        lambda v: torch.tensor(v, dtype=torch.float64).reshape(shape).to(dtype)
    )


@st.composite
def point_values(draw, n: int, d: int, dtype: torch.dtype, kinds=KINDS, limit: float | None = None) -> torch.Tensor:
    """An (n, d) matrix of values, with duplicated rows and constant columns at times."""
    x = draw(values((n, d), dtype, kinds=kinds, limit=limit)).clone()
    if n > 2 and draw(st.booleans()):  # duplicated rows
        copies = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=1, max_size=n))
        for src, dst in copies:
            x[dst] = x[src]
    if draw(st.booleans()):  # constant columns
        for c in draw(st.lists(st.integers(0, d - 1), min_size=1, max_size=d, unique=True)):
            x[:, c] = x[0, c]
    return x


@st.composite
def responses(draw, n: int, dtype: torch.dtype | None = None, limit: float | None = None) -> torch.Tensor:
    """A response y (n,), float32/float64, never constant; ties at times."""
    dtype = draw(float_dtypes()) if dtype is None else dtype
    y = draw(values((n,), dtype, kinds=("normal", "grid", "tiny", "huge"), limit=limit)).clone()
    if not bool(y.max() > y.min()):
        y[0], y[-1] = 0.0, 1.0
    return y


# Layouts: how the values reach the op. "sliced" embeds them in a larger
# tensor (every other element, past an offset) whose other elements are NaN, so
# a kernel that ignored the strides would see NaN. "expand_row"/"expand_col"
# are stride-0 views that repeat the first row/column: they change the values,
# and `lay_out` applies them the same way to the kernel's and the twin's input.
LAYOUTS_1D = ("contiguous", "sliced")
LAYOUTS_2D = ("contiguous", "transposed", "sliced", "expand_row", "expand_col")
LAYOUTS_ND = ("contiguous", "transposed", "sliced", "expand_row")


def layouts(dim: int, expand: bool = True) -> st.SearchStrategy[str]:
    choices = LAYOUTS_1D if dim == 1 else LAYOUTS_2D if dim == 2 else LAYOUTS_ND
    if not expand:
        choices = tuple(c for c in choices if not c.startswith("expand"))
    return st.sampled_from(choices)


def lay_out(t: torch.Tensor, layout: str) -> torch.Tensor:
    """`t` as a view of the given layout on t's device (see LAYOUTS_*)."""
    if layout == "contiguous" or t.dim() == 0:
        return t.contiguous()
    if layout == "transposed":  # the same values, dimensions stored in reverse order
        order = list(reversed(range(t.dim())))
        return t.permute(order).contiguous().permute(order)
    if layout == "sliced":
        big = torch.full([2 * s + 1 for s in t.shape], float("nan"), dtype=t.dtype, device=t.device)
        if not big.is_floating_point():
            big.fill_(7)
        view = big[tuple(slice(1, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    if layout == "expand_row":
        return t[:1].expand(t.shape)
    if layout == "expand_col":
        return t[:, :1].expand(t.shape)
    raise ValueError(f"unknown layout {layout}")


def with_bad_value(t: torch.Tensor, where: int, bad: float) -> torch.Tensor:
    """A contiguous copy of `t` with element `where` (mod numel) set to `bad`."""
    t = t.clone().contiguous()
    t.view(-1)[where % t.numel()] = bad
    return t


def non_finite() -> st.SearchStrategy[float]:
    return st.sampled_from([float("nan"), float("inf"), float("-inf")])
