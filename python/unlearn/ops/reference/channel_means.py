"""Twin of unlearn::channel_means: per-sample, per-channel means into a matrix."""

from __future__ import annotations

import torch

from .checks import FLOATS, check_no_overlap, fail


def check_channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    if act.dim() < 2 or act.numel() == 0:
        fail("channel_means", f"act must be a non-empty tensor of shape (N, C, ...), got {tuple(act.shape)}")
    if act.dtype not in FLOATS:
        fail("channel_means", f"act must be float32 or float64, got {act.dtype}")
    if out.dim() != 2 or out.shape[0] != act.shape[0]:
        fail("channel_means", f"out must have shape (N, columns) with N = {act.shape[0]}, got {tuple(out.shape)}")
    if out.dtype != act.dtype or out.device != act.device:
        fail("channel_means", "out must match act's dtype and device")
    check_no_overlap("channel_means", "out", out)
    if not (column >= 0 and act.shape[1] <= out.shape[1] and column <= out.shape[1] - act.shape[1]):
        fail("channel_means", f"column {column} + {act.shape[1]} channels exceeds out's {out.shape[1]} columns")


def channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    check_channel_means(act, out, column)
    means = act.reshape(act.shape[0], act.shape[1], -1).double().mean(dim=2)
    out[:, column : column + act.shape[1]] = means.to(out.dtype)
