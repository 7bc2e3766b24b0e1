"""Twin of unlearn::perturb: `copies` noisy copies x + sigma * e."""

from __future__ import annotations

import torch

from .._checks import check_perturb
from .counter_rng import counter_normal


def perturb(x: torch.Tensor, copies: int, sigma: float, seed: int = 0) -> torch.Tensor:
    check_perturb(x, copies, sigma)
    counters = torch.arange(copies * x.numel(), device=x.device).view(copies, *x.shape)
    return x + (sigma * counter_normal(seed, counters)).to(x.dtype)
