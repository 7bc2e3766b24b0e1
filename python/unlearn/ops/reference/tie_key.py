"""Seeded tie-break keys, the twin of csrc/common/tie_key.h.

Among candidates at exactly the same distance from point i, the one with the
smaller key(seed, i, j) wins, then the smaller index. 32-bit arithmetic is done
in int64 tensors with explicit masks.
"""

from __future__ import annotations

import torch

_MASK = 0xFFFFFFFF


def _mix32_int(x: int) -> int:
    x &= _MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def seed_state(seed: int) -> int:
    s = seed & 0xFFFFFFFFFFFFFFFF
    return _mix32_int((s & _MASK) ^ _mix32_int(((s >> 32) + 0x9E3779B9) & _MASK))


def tie_keys(seed: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Keys of every (row, col) pair: a len(rows) x len(cols) int64 matrix."""
    state = seed_state(seed)
    left = mix32((rows.to(torch.int64) & _MASK) ^ state)
    return mix32(left[:, None] ^ (cols.to(torch.int64) & _MASK)[None, :])


def argmin_with_ties(dist: torch.Tensor, seed: int, rows: torch.Tensor) -> torch.Tensor:
    """Per row r of `dist` (rows x n), the column of the smallest distance
    other than column rows[r] (the point itself, which the caller sets to
    inf); exact ties go to the smaller tie key, then the smaller column index.
    Distances that all overflowed to inf tie among the other points."""
    n = dist.shape[1]
    cols = torch.arange(n, device=dist.device)
    tied = dist == dist.min(dim=1, keepdim=True).values
    tied[torch.arange(len(rows), device=dist.device), rows] = False
    # key * n + col orders by key, then by column; it stays below 2^63.
    rank = tie_keys(seed, rows, cols) * n + cols[None, :]
    rank = torch.where(tied, rank, torch.iinfo(torch.int64).max)
    return rank.argmin(dim=1)
