"""Argument checks shared by the twins (each op's own check sits in its twin's
module). Every failure is a ValueError that names the op and the argument,
with the wording of the compiled kernels' checks (csrc/ops/).
"""

from __future__ import annotations

import os

import torch

FLOATS = (torch.float32, torch.float64)
INT64_MAX = 2**63 - 1
# The most rows the rank-based ops take: n^2 fits in int64, so every per-row
# term and every sum of ranks over rows is an exact int64 (sums that reach n^3
# are summed exactly by `ranks.exact_sum`). csrc/ops/checks.h, kMaxRankRows.
MAX_RANK_ROWS = 3037000499  # floor(sqrt(2^63 - 1))


def fail(op: str, message: str) -> None:
    raise ValueError(f"{op}: {message}")


def all_finite(t: torch.Tensor) -> bool:
    """Whether `t` holds no NaN or infinity, from its extremes (a NaN propagates
    to both, an infinity is one of them): one pass and no temporary as large
    as `t`, as the kernels check."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return bool(torch.isfinite(torch.stack([low, high])).all())


def check_points(op: str, name: str, x: torch.Tensor, max_rows: int = INT64_MAX) -> None:
    """A float32/float64 matrix (n, d) with 2 <= n <= max_rows, d >= 1 and finite values."""
    if x.dim() != 2:
        fail(op, f"{name} must be a 2-D tensor of shape (n, d), got {x.dim()} dimensions")
    if x.dtype not in FLOATS:
        fail(op, f"{name} must be float32 or float64, got {x.dtype}")
    if x.shape[0] < 2:
        fail(op, f"{name} needs at least 2 rows, got {x.shape[0]}")
    if x.shape[0] > max_rows:
        fail(op, f"{name} has {x.shape[0]} rows, more than the {max_rows} whose rank sums are exact in int64")
    if x.shape[1] < 1:
        fail(op, f"{name} needs at least 1 column, got 0")
    if not all_finite(x):
        fail(op, f"{name} contains NaN or infinite values")


def check_response(op: str, name: str, y: torch.Tensor, n: int) -> None:
    """A float32/float64 vector of length n with finite, not all equal values."""
    if y.dim() != 1:
        fail(op, f"{name} must be a 1-D tensor, got {y.dim()} dimensions")
    if y.dtype not in FLOATS:
        fail(op, f"{name} must be float32 or float64, got {y.dtype}")
    if y.shape[0] != n:
        fail(op, f"{name} has {y.shape[0]} values but the other inputs have {n} rows")
    if n < 2:
        fail(op, f"{name} needs at least 2 values, got {n}")
    if not all_finite(y):
        fail(op, f"{name} contains NaN or infinite values")
    if not bool(y.max() > y.min()):
        fail(op, f"{name} is constant, so its dependence on anything is undefined")


def check_same_rows(op: str, name: str, other: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """`other` has the dtype, device and row count of `ref`."""
    if other.shape[0] != ref.shape[0]:
        fail(op, f"{name} has {other.shape[0]} rows but {ref_name} has {ref.shape[0]}")
    if other.dtype != ref.dtype:
        fail(op, f"{name} is {other.dtype} but {ref_name} is {ref.dtype}")
    if other.device != ref.device:
        fail(op, f"{name} is on {other.device} but {ref_name} is on {ref.device}")


def check_no_overlap(op: str, name: str, t: torch.Tensor) -> None:
    """A tensor the op writes into has no two elements at one address (an
    expanded view): every dimension of size > 1 has a nonzero stride."""
    if any(stride == 0 and size > 1 for stride, size in zip(t.stride(), t.shape)):
        fail(op, f"{name} is an expanded view (several elements share one address); pass a tensor with its own memory")


def device_memory(device: torch.device) -> int:
    """Bytes of memory of `device`, the most an op's new tensor may take: the
    machine's physical memory for the CPU, the device's total memory for
    CUDA (cudaMemGetInfo), and the largest int64 where it is unknown (as the
    kernels count)."""
    if device.type == "cuda":
        return min(torch.cuda.mem_get_info(device)[1], INT64_MAX)
    if device.type == "cpu":
        try:
            pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return INT64_MAX
        if pages <= 0 or page_size <= 0 or pages > INT64_MAX // page_size:
            return INT64_MAX
        return pages * page_size
    return INT64_MAX
