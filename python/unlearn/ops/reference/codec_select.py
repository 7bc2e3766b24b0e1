"""Twin of unlearn::codec_select: FOCI forward selection, by dense search.

Every candidate of every step gets its own dense n x n distance matrix
D_S + (f_j[i] - f_j[k])^2, where D_S accumulates the selected columns in pick
order, the same additions the kernels make.
"""

from __future__ import annotations

import torch

from ..ranks import exact_sum, max_ranks
from .checks import MAX_RANK_ROWS, check_points, check_response, fail
from .tie_key import argmin_with_ties


def check_codec_select(
    y: torch.Tensor, features: torch.Tensor, max_select: int, max_cache_bytes: int, columns: int | None = None
) -> None:
    """With `columns` (the total p), `features` is one rank's block of the
    columns (2-D, checked by the caller), which may hold none of them."""
    if columns is None or features.shape[1]:
        check_points("codec_select", "features", features, MAX_RANK_ROWS)
    check_response("codec_select", "y", y, features.shape[0])
    if y.device != features.device:
        fail("codec_select", f"y is on {y.device} but features is on {features.device}")
    p = features.shape[1] if columns is None else columns
    if not 1 <= max_select <= p:
        fail("codec_select", f"max_select must be between 1 and the number of columns ({p}), got {max_select}")
    if max_cache_bytes < 0:
        fail("codec_select", f"max_cache_bytes must be >= 0, got {max_cache_bytes}")


def _neighbor_rank_sum(up: torch.Tensor, dist: torch.Tensor, seed: int) -> int:
    rows = torch.arange(dist.shape[0], device=dist.device)
    m = argmin_with_ties(dist, seed, rows)
    return int(torch.minimum(up, up[m]).sum())


def codec_select(
    y: torch.Tensor,
    features: torch.Tensor,
    max_select: int,
    stop_early: bool = True,
    seed: int = 0,
    max_cache_bytes: int = 1 << 30,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_codec_select(y, features, max_select, max_cache_bytes)
    n, p = features.shape
    up, down = max_ranks(y)
    order = torch.full((max_select,), -1, dtype=torch.int64, device=features.device)
    scores = torch.full((max_select,), float("nan"), dtype=features.dtype, device=features.device)
    diag = torch.arange(n, device=features.device)
    d_s = torch.zeros(n, n, dtype=features.dtype, device=features.device)
    chosen: list[int] = []
    for step in range(max_select):
        if chosen:
            d_s_self = d_s.clone()
            d_s_self[diag, diag] = float("inf")
            self_sum = _neighbor_rank_sum(up, d_s_self, seed)
            den = int(up.sum()) - self_sum
            if den == 0:  # y is already a function of the selected columns
                break
        best_j, best_num = -1, -1
        for j in range(p):
            if j in chosen:
                continue
            f = features[:, j]
            diff = f[:, None] - f[None, :]
            dist = d_s + diff * diff
            dist[diag, diag] = float("inf")
            num = _neighbor_rank_sum(up, dist, seed)
            if num > best_num:
                best_j, best_num = j, num
        # As the kernels do: integer numerator and denominator (exact, the
        # first step's reach n^3), each rounded once to a double.
        if chosen:
            t = float(best_num - self_sum) / float(den)
        else:
            t = float(n * best_num - exact_sum(down * down)) / float(exact_sum(down * (n - down)))
        if stop_early and t <= 0:
            break
        order[step], scores[step] = best_j, t
        chosen.append(best_j)
        f = features[:, best_j]
        diff = f[:, None] - f[None, :]
        d_s = d_s + diff * diff
    return order, scores
