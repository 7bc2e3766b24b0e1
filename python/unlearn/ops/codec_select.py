"""unlearn::codec_select: FOCI forward selection of columns."""

from __future__ import annotations

import torch

from .._core import check_int64, check_option, check_seed
from ._library import declare
from .reference import codec_select as twin

DEFAULT_CACHE_BYTES = 1 << 30


def _fake(y: torch.Tensor, features: torch.Tensor, max_select: int, *_options) -> tuple[torch.Tensor, torch.Tensor]:
    return features.new_empty((max_select,), dtype=torch.int64), features.new_empty((max_select,))


declare(
    "codec_select(Tensor y, Tensor features, int max_select, bool stop_early=True, "
    f"int seed=0, int max_cache_bytes={DEFAULT_CACHE_BYTES}) -> (Tensor, Tensor)",
    twin=twin,
    fake=_fake,
)


def codec_select(
    y: torch.Tensor,
    features: torch.Tensor,
    max_select: int,
    *,
    stop_early: bool = True,
    seed: int = 0,
    max_cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedily picks up to `max_select` columns of `features` (n x p) by
    T(y, f_j | picked so far). Returns (columns, scores), each of length
    `max_select`: the picks in order and their T; with `stop_early` the
    selection stops once the best T is <= 0 and the unused places hold -1
    (and score NaN). The squared distances of the picked columns are cached
    while they fit in `max_cache_bytes`. Every input is checked as for
    `codec` (features has at most 3037000499 rows; any strides). The first
    step's sums reach n^3 and are summed exactly. Trusted: `max_cache_bytes`
    as a budget; the n x n cache is allocated whenever it fits in it, so a
    budget past the free memory can exhaust it. `unlearn.foci` is the
    user-facing version."""
    check_option("stop_early", stop_early, bool)
    return torch.ops.unlearn.codec_select(
        y,
        features,
        check_int64("max_select", max_select, op="codec_select"),
        stop_early,
        check_seed(seed, op="codec_select"),
        check_int64("max_cache_bytes", max_cache_bytes, op="codec_select"),
    )
