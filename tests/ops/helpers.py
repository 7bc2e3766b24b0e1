"""Inputs and constants shared by the op tests."""

from __future__ import annotations

import subprocess
import sys

import torch

DTYPES = [torch.float32, torch.float64]
# How far a kernel on another device may be from the CPU kernel and the twin.
TOL = {torch.float32: 1e-4, torch.float64: 1e-9}


def draw_seed(gen: torch.Generator) -> int:
    """An op seed drawn from the test's generator."""
    return int(torch.randint(0, 2**31, (1,), generator=gen))


def integer_points(gen: torch.Generator, n: int, d: int, dtype: torch.dtype, high: int = 4) -> torch.Tensor:
    """n points in d dimensions on the integer grid [0, high): many ties and duplicates."""
    return torch.randint(0, high, (n, d), generator=gen).to(dtype)


def with_nan(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[3] = float("nan")
    return t


def with_inf(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = float("inf")
    return t


# One row more than the rank sums allow (n^2 must fit in int64).
TOO_MANY_ROWS = 3037000500

_ROW_CAP_SCRIPT = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
import torch, unlearn
from unlearn.ops import reference
n = {rows}
y, points = torch.zeros(1).expand(n), torch.zeros(1, 2).expand(n, 2)
for args, name in {cases}:
    texts = []
    for fn in (torch.ops.unlearn.{op}, reference.{op}):
        try:
            fn(*eval(args))
        except ValueError as error:
            texts.append(str(error))
    want = f"{op}: {{name}} has {rows} rows, more than the {limit} whose rank sums are exact in int64"
    assert texts == [want, want], texts
print("refused")
"""


def assert_too_many_rows_refused(op: str, cases: list[tuple[str, str]]) -> None:
    """The compiled op and its twin both refuse each call of `cases` ((the
    arguments as source over `y` (n,) and `points` (n, 2), the argument the
    message names)), where n is one row past the exact rank sums. The inputs
    are expanded views that take no memory; the check must come before any
    pass over the values, else the op would scan and sort billions of them,
    so it runs in a child interpreter with its address space capped."""
    script = _ROW_CAP_SCRIPT.format(rows=TOO_MANY_ROWS, limit=TOO_MANY_ROWS - 1, op=op, cases=repr(cases))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "refused" in run.stdout, run.stderr[-2000:]


def dense_solution(blocks, g, damping, low_rank) -> torch.Tensor:
    """Each block's damped system solved by torch.linalg.solve in float64: a
    dense block's lower triangle mirrored, a factor's U^T U / m formed."""
    parts, offset = [], 0
    for a, factored in zip(blocks, low_rank):
        h = a.double()
        h = h.T @ h / h.shape[0] if factored else h.tril() + h.tril(-1).T
        d = h.shape[0]
        parts.append(torch.linalg.solve(h + damping * torch.eye(d, dtype=h.dtype), g[offset : offset + d].double()))
        offset += d
    return torch.cat(parts)
