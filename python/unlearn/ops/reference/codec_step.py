"""Twin of unlearn::codec_step: one FOCI step over a block of rows, by dense search.

For every candidate column j and row i in [row_begin, row_end), the neighbour
of i in S + {j} minimises D_S(i, k) + (f_ij - f_kj)^2, with D_S the selected
columns' squared differences added in order (or the given cache rows).
"""

from __future__ import annotations

import torch

from ..ranks import max_ranks
from .checks import MAX_RANK_ROWS, all_finite, check_points, check_response, check_same_rows, fail
from .tie_key import argmin_with_ties


def check_codec_step(
    y: torch.Tensor,
    candidates: torch.Tensor,
    selected: torch.Tensor,
    row_begin: int,
    row_end: int,
    cache: torch.Tensor | None,
) -> None:
    check_points("codec_step", "candidates", candidates, MAX_RANK_ROWS)
    n = candidates.shape[0]
    check_response("codec_step", "y", y, n)
    if y.device != candidates.device:
        fail("codec_step", f"y is on {y.device} but candidates is on {candidates.device}")
    if selected.dim() != 2:
        fail("codec_step", f"selected must be a 2-D tensor of shape (n, s), got {selected.dim()} dimensions")
    check_same_rows("codec_step", "selected", selected, "candidates", candidates)
    if not all_finite(selected):
        fail("codec_step", "selected contains NaN or infinite values")
    if not 0 <= row_begin < row_end <= n:
        fail("codec_step", f"rows must satisfy 0 <= row_begin < row_end <= {n}, got [{row_begin}, {row_end})")
    if cache is not None:
        if cache.dim() != 2 or tuple(cache.shape) != (row_end - row_begin, n):
            fail(
                "codec_step",
                f"cache must hold the rows [row_begin, row_end) of D_S, shape ({row_end - row_begin}, {n}), "
                f"got {list(cache.shape)}",
            )
        if cache.dtype != candidates.dtype or cache.device != candidates.device:
            fail("codec_step", "cache must have the dtype and device of candidates")
        # The kernel's row scans gather the distances in increasing tiers: a NaN
        # or -inf is never gathered (the scan would not end), and squared
        # distances are >= 0. +inf is a squared distance past the dtype's range.
        if bool(torch.isnan(cache).any()):
            fail("codec_step", "cache contains NaN values")
        if bool((cache < 0).any()):
            fail("codec_step", "cache has negative values, but squared distances are >= 0")


def codec_step(
    y: torch.Tensor,
    candidates: torch.Tensor,
    selected: torch.Tensor,
    row_begin: int,
    row_end: int,
    seed: int = 0,
    cache: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_codec_step(y, candidates, selected, row_begin, row_end, cache)
    up, _ = max_ranks(y)
    rows = torch.arange(row_begin, row_end, device=candidates.device)
    if cache is None:
        cache = torch.zeros(len(rows), candidates.shape[0], dtype=candidates.dtype, device=candidates.device)
        for c in selected.unbind(1):
            cache = cache + (c[rows, None] - c[None, :]).square()
    elif not selected.shape[1]:
        cache = torch.zeros_like(cache)  # nothing selected yet: D_S = 0 whatever was passed

    def neighbour_sum(dist: torch.Tensor) -> torch.Tensor:
        """sum over the rows of min(R_i, R_M(i)), M(i) the nearest other point under `dist`."""
        dist[torch.arange(len(rows)), rows] = float("inf")
        return torch.minimum(up[rows], up[argmin_with_ties(dist, seed, rows)]).sum()

    self_sum = torch.zeros((), dtype=torch.int64, device=candidates.device)
    if selected.shape[1]:
        self_sum = neighbour_sum(cache.clone())
    num = torch.empty(candidates.shape[1], dtype=torch.int64, device=candidates.device)
    for j, f in enumerate(candidates.unbind(1)):
        num[j] = neighbour_sum(cache + (f[rows, None] - f[None, :]).square())
    return num, self_sum
