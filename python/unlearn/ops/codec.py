"""unlearn::codec: the CODEC coefficient T(y, z | x) on tensors."""

from __future__ import annotations

from typing import Optional

import torch

from .._core import check_seed
from ._library import declare
from .reference import codec as twin


def _fake(y: torch.Tensor, z: torch.Tensor, x: Optional[torch.Tensor] = None, seed: int = 0) -> torch.Tensor:
    return z.new_empty(())


declare("codec(Tensor y, Tensor z, Tensor? x=None, int seed=0) -> Tensor", twin=twin, fake=_fake)


def codec(y: torch.Tensor, z: torch.Tensor, x: Optional[torch.Tensor] = None, *, seed: int = 0) -> torch.Tensor:
    """T(y, z | x) of Azadkia and Chatterjee as a 0-d tensor of z's dtype:
    y (n,), z (n, q) and x (n, p), float32/float64 on one device. Ranks are
    summed exactly (in 128 bits where they pass int64), each rounded once
    to float64; nearest-neighbour ties are broken by `seed`. Every input is
    checked (2-D float points, 2 <= n <= 3037000499 rows so that n^2 fits in
    int64, finite values, a non-constant y, one device; any strides).
    `unlearn.codec` is the user-facing version (arrays, 1-D inputs)."""
    return torch.ops.unlearn.codec(y, z, x, check_seed(seed, op="codec"))
