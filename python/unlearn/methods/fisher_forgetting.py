"""Fisher forgetting (Golatkar, Achille, Soatto; CVPR 2020): Gaussian noise
scaled by the inverse Fisher information of the retained data, so weights
the retained data does not pin down are scrambled. No training."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._core import Positive, Samples, eval_mode
from ..curvature import diagonal_fisher
from .registry import register


@register(
    "fisher",
    "noise scaled by the inverse retained-data Fisher (Golatkar et al.)",
    scope="any",
    needs=("retain",),
    controls=("alpha", "max_std"),
)
def fisher(
    model: nn.Module,
    *,
    forget: Optional[Samples],
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    alpha: Positive = 1e-6,
    max_std: Positive = 0.05,
) -> dict:
    """w <- w + sqrt(alpha / F) * N(0, 1), F the diagonal Fisher of the
    retained data (per-sample gradients, model in eval mode); the std is
    capped at `max_std` so parameters the retained data ignores (F ~ 0) are
    scrambled, not blown up. Seeded noise.

    Options:
        alpha: noise variance per unit of inverse Fisher information
        max_std: largest noise standard deviation of any parameter
    """
    with eval_mode(model):
        information = diagonal_fisher(model, retain)
    gen = torch.Generator().manual_seed(seed)
    capped = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in information:
                continue
            std = (alpha / information[name].double()).sqrt().clamp(max=max_std)
            capped += int((std == max_std).sum())
            p.add_((std * torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(p.device, p.dtype))
    return {"alpha": alpha, "max_std": max_std, "capped": capped}
