"""Twin of unlearn::nearest_neighbor: dense distances, one block of rows at a time."""

from __future__ import annotations

import torch

from .checks import check_points
from .tie_key import argmin_with_ties

_BLOCK_ELEMENTS = 1 << 24


def check_nearest_neighbor(x: torch.Tensor) -> None:
    check_points("nearest_neighbor", "x", x)


def neighbors(points: torch.Tensor, seed: int) -> torch.Tensor:
    """Nearest other row of every row; distances summed over columns in order."""
    n, d = points.shape
    out = torch.empty(n, dtype=torch.int64, device=points.device)
    block = max(1, _BLOCK_ELEMENTS // (n * d))
    for start in range(0, n, block):
        rows = torch.arange(start, min(n, start + block), device=points.device)
        diff = points[rows, None, :] - points[None, :, :]
        sq = diff * diff
        dist = sq[..., 0]
        for c in range(1, d):  # column order, as the kernels sum
            dist = dist + sq[..., c]
        dist[torch.arange(len(rows)), rows] = float("inf")
        out[rows] = argmin_with_ties(dist, seed, rows)
    return out


def nearest_neighbor(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    check_nearest_neighbor(x)
    return neighbors(x, seed)
