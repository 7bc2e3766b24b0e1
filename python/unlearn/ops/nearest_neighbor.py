"""unlearn::nearest_neighbor: exact Euclidean 1-nearest neighbours."""

from __future__ import annotations

import torch

from .._core import check_seed
from ._library import declare
from .reference import nearest_neighbor as twin


def _fake(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return x.new_empty((x.shape[0],), dtype=torch.int64)


declare("nearest_neighbor(Tensor x, int seed=0) -> Tensor", twin=twin, fake=_fake)


def nearest_neighbor(x: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """For every row i of `x` (n x d, float32/float64, n >= 2), the index
    (int64) of the nearest other row. Squared distances are summed over the
    columns in order; exact ties go to a pseudo-random pick keyed by `seed`,
    the same on every device. x is checked (finite values, any strides);
    squared distances past the dtype's range are inf and tie among the
    other rows, never the row itself."""
    return torch.ops.unlearn.nearest_neighbor(x, check_seed(seed, op="nearest_neighbor"))
