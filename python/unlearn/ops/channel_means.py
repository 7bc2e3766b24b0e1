"""unlearn::channel_means: per-channel mean activations written into a feature matrix."""

from __future__ import annotations

import torch

from ._library import declare
from .reference import channel_means as twin


def _fake(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    return None


declare("channel_means(Tensor act, Tensor(a!) out, int column) -> ()", twin=twin, fake=_fake)


def channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    """Writes the mean of `act` (N, C, ...) over its positions into columns
    [column, column + C) of `out` (N, columns), in place; sums are
    accumulated in float64."""
    torch.ops.unlearn.channel_means(act, out, column)
