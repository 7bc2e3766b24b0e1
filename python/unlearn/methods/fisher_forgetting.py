"""Fisher forgetting (Golatkar, Achille, Soatto; CVPR 2020): Gaussian noise
scaled by the inverse Fisher information of the retained data, so weights
the retained data does not pin down are scrambled. No training."""

from __future__ import annotations

import torch

from ..curvature import diagonal_fisher
from .base import class_request, eval_mode, register


@register("fisher", "noise scaled by the inverse retained-data Fisher (Golatkar et al.)", scope="any")
def fisher(model, *, forget, retain, forget_classes, seed=0, alpha=1e-6, max_std=0.05):
    """Needs retain. w <- w + sqrt(alpha / F) * N(0, 1), F the diagonal
    Fisher of the retained data (per-sample gradients, model in eval mode);
    the std is capped at `max_std` so parameters the retained data ignores
    (F ~ 0) are scrambled, not blown up. Seeded noise."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if not max_std > 0:
        raise ValueError(f"max_std must be > 0, got {max_std}")
    if forget_classes is not None:
        forget, retain = class_request(forget, retain, forget_classes)
    if retain is None:
        raise ValueError("retain: fisher forgetting needs the retained data (retain=...)")
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
