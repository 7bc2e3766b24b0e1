"""Argument checks of the ops, the Python twin of csrc/ops/*.cpp.

Every failure is a ValueError that names the op and the argument, with the same
wording as the compiled kernels.
"""

from __future__ import annotations

import math

import torch

_FLOATS = (torch.float32, torch.float64)


def _fail(op: str, message: str) -> None:
    raise ValueError(f"{op}: {message}")


def check_points(op: str, name: str, x: torch.Tensor) -> None:
    """A float32/float64 matrix (n, d) with n >= 2, d >= 1 and finite values."""
    if x.dim() != 2:
        _fail(op, f"{name} must be a 2-D tensor of shape (n, d), got {x.dim()} dimensions")
    if x.dtype not in _FLOATS:
        _fail(op, f"{name} must be float32 or float64, got {x.dtype}")
    if x.shape[0] < 2:
        _fail(op, f"{name} needs at least 2 rows, got {x.shape[0]}")
    if x.shape[1] < 1:
        _fail(op, f"{name} needs at least 1 column, got 0")
    if not bool(torch.isfinite(x).all()):
        _fail(op, f"{name} contains NaN or infinite values")


def check_response(op: str, name: str, y: torch.Tensor, n: int) -> None:
    """A float32/float64 vector of length n with finite, not all equal values."""
    if y.dim() != 1:
        _fail(op, f"{name} must be a 1-D tensor, got {y.dim()} dimensions")
    if y.dtype not in _FLOATS:
        _fail(op, f"{name} must be float32 or float64, got {y.dtype}")
    if y.shape[0] != n:
        _fail(op, f"{name} has {y.shape[0]} values but the other inputs have {n} rows")
    if n < 2:
        _fail(op, f"{name} needs at least 2 values, got {n}")
    if not bool(torch.isfinite(y).all()):
        _fail(op, f"{name} contains NaN or infinite values")
    if not bool(y.max() > y.min()):
        _fail(op, f"{name} is constant, so its dependence on anything is undefined")


def check_same_rows(op: str, name: str, other: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """`other` has the dtype, device and row count of `ref`."""
    if other.shape[0] != ref.shape[0]:
        _fail(op, f"{name} has {other.shape[0]} rows but {ref_name} has {ref.shape[0]}")
    if other.dtype != ref.dtype:
        _fail(op, f"{name} is {other.dtype} but {ref_name} is {ref.dtype}")
    if other.device != ref.device:
        _fail(op, f"{name} is on {other.device} but {ref_name} is on {ref.device}")


def check_nearest_neighbor(x: torch.Tensor) -> None:
    check_points("nearest_neighbor", "x", x)


def check_codec(y: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None) -> None:
    check_points("codec", "z", z)
    if x is not None:
        check_points("codec", "x", x)
        check_same_rows("codec", "x", x, "z", z)
    check_response("codec", "y", y, z.shape[0])
    if y.device != z.device:
        _fail("codec", f"y is on {y.device} but z is on {z.device}")


def check_codec_select(
    y: torch.Tensor, features: torch.Tensor, max_select: int, max_cache_bytes: int, columns: int | None = None
) -> None:
    """With `columns` (the total p), `features` is one rank's block of the
    columns (2-D, checked by the caller), which may hold none of them."""
    if columns is None or features.shape[1]:
        check_points("codec_select", "features", features)
    check_response("codec_select", "y", y, features.shape[0])
    if y.device != features.device:
        _fail("codec_select", f"y is on {y.device} but features is on {features.device}")
    p = features.shape[1] if columns is None else columns
    if not 1 <= max_select <= p:
        _fail("codec_select", f"max_select must be between 1 and the number of columns ({p}), got {max_select}")
    if max_cache_bytes < 0:
        _fail("codec_select", f"max_cache_bytes must be >= 0, got {max_cache_bytes}")


def check_perturb(x: torch.Tensor, copies: int, sigma: float) -> None:
    if x.dim() < 1 or x.numel() == 0:
        _fail("perturb", f"x must be a non-empty tensor, got shape {tuple(x.shape)}")
    if x.dtype not in _FLOATS:
        _fail("perturb", f"x must be float32 or float64, got {x.dtype}")
    if copies < 1:
        _fail("perturb", f"copies must be >= 1, got {copies}")
    if not (math.isfinite(sigma) and sigma >= 0):
        _fail("perturb", f"sigma must be finite and >= 0, got {sigma}")


def check_channel_means(act: torch.Tensor, out: torch.Tensor, column: int) -> None:
    if act.dim() < 2 or act.numel() == 0:
        _fail("channel_means", f"act must be a non-empty tensor of shape (N, C, ...), got {tuple(act.shape)}")
    if act.dtype not in _FLOATS:
        _fail("channel_means", f"act must be float32 or float64, got {act.dtype}")
    if out.dim() != 2 or out.shape[0] != act.shape[0]:
        _fail("channel_means", f"out must have shape (N, columns) with N = {act.shape[0]}, got {tuple(out.shape)}")
    if out.dtype != act.dtype or out.device != act.device:
        _fail("channel_means", "out must match act's dtype and device")
    if column < 0 or column + act.shape[1] > out.shape[1]:
        _fail("channel_means", f"column {column} + {act.shape[1]} channels exceeds out's {out.shape[1]} columns")


def check_block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> None:
    if not blocks:
        _fail("block_solve", "blocks is empty")
    if len(low_rank) != len(blocks):
        _fail("block_solve", f"low_rank has {len(low_rank)} entries but there are {len(blocks)} blocks")
    if not (math.isfinite(damping) and damping >= 0):
        _fail("block_solve", f"damping must be finite and >= 0, got {damping}")
    if g.dim() != 1:
        _fail("block_solve", f"g must be a 1-D tensor, got {g.dim()} dimensions")
    if g.dtype not in _FLOATS:
        _fail("block_solve", f"g must be float32 or float64, got {g.dtype}")
    total = 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        if a.dim() != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            _fail("block_solve", f"block {b} must be a non-empty 2-D tensor, got shape {tuple(a.shape)}")
        if not factored and a.shape[0] != a.shape[1]:
            _fail("block_solve", f"block {b} is dense but not square: {tuple(a.shape)}")
        if a.dtype not in (g.dtype, torch.float32) or a.device != g.device:
            _fail(
                "block_solve",
                f"block {b} must be on g's device ({g.device}) with g's dtype ({g.dtype}) or float32, "
                f"got {a.dtype} on {a.device}",
            )
        if factored and a.shape[0] < a.shape[1] and damping <= 0:
            _fail("block_solve", f"block {b} has rank {a.shape[0]} < size {a.shape[1]}, so it needs damping > 0")
        total += a.shape[1]
    if g.shape[0] != total:
        _fail("block_solve", f"g has {g.shape[0]} entries but the blocks cover {total} parameters")
    if not bool(torch.isfinite(g).all()):
        _fail("block_solve", "g contains NaN or infinite values")
    for b, a in enumerate(blocks):
        if not bool(torch.isfinite(a).all()):
            _fail("block_solve", f"block {b} contains NaN or infinite values")


def check_codec_step(
    y: torch.Tensor, candidates: torch.Tensor, selected: torch.Tensor, row_begin: int, row_end: int, cache: torch.Tensor | None
) -> None:
    check_points("codec_step", "candidates", candidates)
    n = candidates.shape[0]
    check_response("codec_step", "y", y, n)
    if y.device != candidates.device:
        _fail("codec_step", f"y is on {y.device} but candidates is on {candidates.device}")
    if selected.dim() != 2:
        _fail("codec_step", f"selected must be a 2-D tensor of shape (n, s), got {selected.dim()} dimensions")
    check_same_rows("codec_step", "selected", selected, "candidates", candidates)
    if selected.numel() and not bool(torch.isfinite(selected).all()):
        _fail("codec_step", "selected contains NaN or infinite values")
    if not 0 <= row_begin < row_end <= n:
        _fail("codec_step", f"rows must satisfy 0 <= row_begin < row_end <= {n}, got [{row_begin}, {row_end})")
    if cache is not None:
        if cache.dim() != 2 or tuple(cache.shape) != (row_end - row_begin, n):
            _fail(
                "codec_step",
                f"cache must hold the rows [row_begin, row_end) of D_S, shape ({row_end - row_begin}, {n}), "
                f"got {list(cache.shape)}",
            )
        if cache.dtype != candidates.dtype or cache.device != candidates.device:
            _fail("codec_step", "cache must have the dtype and device of candidates")
