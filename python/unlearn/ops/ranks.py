"""Ranks of the response, the integers every CODEC sum is built from (shared
by the twins and the sharded FOCI)."""

from __future__ import annotations

import torch


def max_ranks(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R_i = #{j: y_j <= y_i} and L_i = #{j: y_j >= y_i} (int64)."""
    y = y.contiguous()  # a column of a larger matrix: searchsorted copies (and warns) otherwise
    ys = y.sort().values
    up = torch.searchsorted(ys, y, right=True)
    down = y.shape[0] - torch.searchsorted(ys, y, right=False)
    return up, down


# Entries summed per chunk: with t = hi * 2^32 + lo, hi in [-2^31, 2^31) and lo
# in [0, 2^32), a chunk's int64 sums of hi and of lo cannot overflow.
EXACT_SUM_CHUNK = 1 << 30


def exact_sum(t: torch.Tensor, chunk: int = EXACT_SUM_CHUNK) -> int:
    """The exact sum of the int64 tensor `t` as a Python int, on any device:
    per chunk the int64 sums of the high and low 32-bit halves of the
    entries, combined as Python ints (the kernels' common/exact_sum.h)."""
    if t.dtype != torch.int64 or not 1 <= chunk <= EXACT_SUM_CHUNK:
        raise ValueError("exact_sum: needs an int64 tensor and 1 <= chunk <= 2**30")
    total = 0
    for part in t.reshape(-1).split(chunk):
        total += int((part >> 32).sum()) * 2**32 + int((part & 0xFFFFFFFF).sum())
    return total
