"""Inputs and constants shared by the op tests."""

from __future__ import annotations

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
