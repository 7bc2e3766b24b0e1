"""Twin of unlearn::channel_means: per-sample, per-channel means into a matrix."""

from __future__ import annotations

import torch

from .._checks import check_channel_means


def channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    check_channel_means(act, out, column)
    means = act.reshape(act.shape[0], act.shape[1], -1).double().mean(dim=2)
    out[:, column : column + act.shape[1]] = means.to(out.dtype)
