"""unlearn::channel_means: per-channel mean activations written into a feature matrix."""

from __future__ import annotations

import torch

from .._core import check_int64
from ._library import declare
from .reference import channel_means as twin


def _fake(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    return None


declare("channel_means(Tensor act, Tensor(a!) out, int column) -> ()", twin=twin, fake=_fake)


def channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    """Writes the mean of `act` (N, C, ...) over its positions into columns
    [column, column + C) of `out` (N, columns), in place; sums are
    accumulated in float64.

    Checked: shapes, dtypes (float32/float64, out's that of act), devices,
    0 <= column <= columns - C, and that `out` is not an expanded view (its
    elements must not share memory). Any strides work, and `act` may be a
    view of `out`. Trusted: the values of `act`, which are not checked for
    NaN or inf; those propagate into their means, as in torch.mean (a float64
    sum past the float range gives inf)."""
    torch.ops.unlearn.channel_means(act, out, check_int64("column", column, op="channel_means"))
