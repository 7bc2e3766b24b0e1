"""Ranks of the response, the integers every CODEC sum is built from (shared
by the twins and the sharded FOCI)."""

from __future__ import annotations

import torch


def max_ranks(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R_i = #{j: y_j <= y_i} and L_i = #{j: y_j >= y_i} (int64)."""
    ys = y.sort().values
    up = torch.searchsorted(ys, y, right=True)
    down = y.shape[0] - torch.searchsorted(ys, y, right=False)
    return up, down
