"""unlearn::codec_step: one FOCI step over a block of rows and candidate columns."""

from __future__ import annotations

from typing import Optional

import torch

from .._core import check_int64, check_seed
from ._library import declare
from .reference import codec_step as twin


def _fake(y: torch.Tensor, candidates: torch.Tensor, *_rest) -> tuple[torch.Tensor, torch.Tensor]:
    return candidates.new_empty((candidates.shape[1],), dtype=torch.int64), candidates.new_empty((), dtype=torch.int64)


declare(
    "codec_step(Tensor y, Tensor candidates, Tensor selected, int row_begin, int row_end, "
    "int seed=0, Tensor? cache=None) -> (Tensor, Tensor)",
    twin=twin,
    fake=_fake,
)


def codec_step(
    y: torch.Tensor,
    candidates: torch.Tensor,
    selected: torch.Tensor,
    row_begin: int,
    row_end: int,
    *,
    seed: int = 0,
    cache: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer sums of one FOCI step over rows [row_begin, row_end):
    for each candidate column j, sum_i min(R_i, R_M(i)) with M(i) the
    neighbour of i in the picked columns `selected` (n x s) plus column j,
    and the same sum for `selected` alone (int64 tensors (p,) and ()).
    `cache` may hold those rows of the picked columns' squared distances
    ((row_end - row_begin) x n). Partial sums over row blocks add up to the
    whole step: the building block of `unlearn.distributed.codec_select`.

    Checked: as for `codec` (candidates has at most 3037000499 rows, so
    every sum fits in int64), `selected` finite with candidates' rows, dtype
    and device, 0 <= row_begin < row_end <= n, and `cache` of shape
    (row_end - row_begin, n), candidates' dtype and device, without NaN or
    negative values (+inf is allowed: a squared distance past the dtype's
    range). Any strides work. Trusted: that `cache` holds the squared
    distances of `selected`; any other values are used as given, by the
    kernel and the twin alike."""
    return torch.ops.unlearn.codec_step(
        y,
        candidates,
        selected,
        check_int64("row_begin", row_begin, op="codec_step"),
        check_int64("row_end", row_end, op="codec_step"),
        check_seed(seed, op="codec_step"),
        cache,
    )
