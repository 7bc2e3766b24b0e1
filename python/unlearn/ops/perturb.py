"""unlearn::perturb: seeded Gaussian copies of a tensor."""

from __future__ import annotations

import torch

from .._core import check_seed
from ._library import declare
from .reference import perturb as twin


def _fake(x: torch.Tensor, copies: int, sigma: float, seed: int = 0) -> torch.Tensor:
    return x.new_empty((copies, *x.shape))


declare("perturb(Tensor x, int copies, float sigma, int seed=0) -> Tensor", twin=twin, fake=_fake)


def perturb(x: torch.Tensor, copies: int, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """`copies` noisy copies x + sigma * e, shape (copies, *x.shape), with e
    standard normal from a counter-based generator: the same numbers for a
    seed on every device and thread count."""
    return torch.ops.unlearn.perturb(x, copies, sigma, check_seed(seed))
