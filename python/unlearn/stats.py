"""CODEC and FOCI for users: tensors or numpy arrays in, plain results out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from . import ops
from ._core import check_option, check_seed
from .ops.reference.checks import check_points, check_response, check_same_rows

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray, got {type(value).__name__}")


def _response(y: ArrayLike) -> torch.Tensor:
    """y only enters through its ranks: integers and booleans are fine."""
    t = _as_tensor(y, "y")
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() != 1:
        raise ValueError(f"y must be a 1-D array of n values, got shape {tuple(t.shape)}")
    if t.is_complex():
        raise ValueError(f"y must be real-valued, got {t.dtype}")
    return t if t.dtype == torch.float64 else t.to(torch.float64)


def _points(value: ArrayLike, name: str, shape_hint: str) -> torch.Tensor:
    t = _as_tensor(value, name)
    if not t.is_floating_point():
        raise ValueError(
            f"{name} must be float32 or float64 (distances are taken between its rows), got {t.dtype}; "
            "convert it with .double() or .astype(float)"
        )
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape {shape_hint}, got {tuple(t.shape)}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t


def standardize_columns(features: torch.Tensor) -> torch.Tensor:
    """Centre each column and scale it to unit (n - 1) standard deviation;
    constant columns become zeros."""
    centred = features - features.mean(dim=0, keepdim=True)
    std = centred.std(dim=0, keepdim=True)
    return torch.where(std > 0, centred / torch.where(std > 0, std, 1), torch.zeros_like(centred))


def codec(
    y: ArrayLike,
    z: ArrayLike,
    x: Optional[ArrayLike] = None,
    seed: int = 0,
    standardize_inputs: bool = False,
) -> float:
    """The CODEC coefficient T(y, z | x) of Azadkia and Chatterjee (2021).

    Near 0 when y is independent of z (given x), 1 when y is a measurable
    function of z (given x). y: n values; z: (n,) or (n, q); x: (n,) or (n, p).
    Nearest-neighbour ties are broken at random by `seed`.
    """
    seed = check_seed(seed)
    zt = _points(z, "z", "(n,) or (n, q)")
    xt = None if x is None else _points(x, "x", "(n,) or (n, p)")
    if xt is not None and xt.dtype != zt.dtype:
        xt = xt.to(torch.float64)
        zt = zt.to(torch.float64)
    # Validate before standardising, which would hide NaN and constant columns.
    check_points("codec", "z", zt)
    if xt is not None:
        check_points("codec", "x", xt)
        check_same_rows("codec", "x", xt, "z", zt)
    if standardize_inputs:
        zt = standardize_columns(zt)
        xt = None if xt is None else standardize_columns(xt)
    yt = _response(y).to(zt.device)
    return float(ops.codec(yt, zt, xt, seed=seed))


@dataclass(frozen=True)
class FociResult:
    """Columns chosen by FOCI, in the order they were picked, and the
    conditional dependence T(y, f_j | previously picked) of each pick."""

    selected: list[int]
    scores: list[float]

    def __iter__(self):
        return iter((self.selected, self.scores))


def foci(
    y: ArrayLike,
    features: ArrayLike,
    max_select: Optional[int] = None,
    stop_early: bool = True,
    standardize: bool = True,
    seed: int = 0,
    group: Optional[Any] = None,
    shard: str = "columns",
) -> FociResult:
    """Feature Ordering by Conditional Independence (Azadkia and Chatterjee).

    Greedily adds the column of `features` (n x p) with the largest
    T(y, f_j | selected); with `stop_early`, stops once the best T is <= 0.
    Columns are standardised first by default, as in the R package. With a
    torch.distributed process `group`, every rank passes the same data and
    the ranks share the work (`unlearn.distributed.codec_select`, `shard`
    "columns", "rows" or "both"); the result is the same.
    """
    seed = check_seed(seed)
    ft = _points(features, "features", "(n, p)")
    p = ft.shape[1]
    if max_select is None:
        max_select = p
    check_option("max_select", max_select, int)
    if not 1 <= max_select <= p:
        raise ValueError(f"max_select must be between 1 and the number of columns ({p}), got {max_select}")
    check_points("foci", "features", ft)
    yt = _response(y).to(ft.device)
    check_response("foci", "y", yt, ft.shape[0])
    if standardize:
        ft = standardize_columns(ft)
    if group is not None:
        from .distributed import codec_select as sharded

        order, scores = sharded(
            yt, ft.contiguous(), int(max_select), group=group, shard=shard, stop_early=bool(stop_early), seed=seed
        )
    else:
        order, scores = ops.codec_select(yt, ft.contiguous(), int(max_select), stop_early=bool(stop_early), seed=seed)
    keep = order >= 0
    return FociResult(order[keep].tolist(), scores[keep].tolist())
