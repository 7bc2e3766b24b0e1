"""Batched adversarial search shared by the methods that look for a
sample's neighbours across the decision boundary: `l2ul`'s targeted anchors
and `boundary_shrink`'s nearest wrong class. Every row is attacked at once;
gradients are taken with respect to the perturbation only."""

from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn


def _unit(v: torch.Tensor) -> torch.Tensor:
    norms = v.flatten(1).norm(dim=1).clamp_min(1e-12)
    return v / norms.view(-1, *([1] * (v.dim() - 1)))


def clamp_inputs(x: torch.Tensor, bounds: Optional[tuple[float, float]]) -> torch.Tensor:
    """`x` clamped to the (min, max) input range `bounds` (unchanged for None)."""
    return x if bounds is None else x.clamp(*bounds)


def _loss_gradient(
    model: nn.Module, moved: torch.Tensor, labels: torch.Tensor, bounds: Optional[tuple[float, float]]
) -> torch.Tensor:
    """The gradient of the summed cross-entropy w.r.t. the perturbation that
    gives the inputs `moved`: the model's gradient at `moved` clamped to
    `bounds`, kept where `moved` lies within them (on a bound included) and
    0 where the clamp holds it. Taken at the clamped input, not through
    torch's clamp, whose gradient on a bound itself changed from 1 to 0 in
    torch 2.14: a pixel at 0 or 1, common in images, could then never move."""
    inputs = clamp_inputs(moved, bounds).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(inputs), labels, reduction="sum"), inputs)
    return g if bounds is None else g * ((moved >= bounds[0]) & (moved <= bounds[1]))


def _start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """A random perturbation inside the eps-ball: uniform in the L2 ball, or
    uniform per coordinate in [-eps, eps] for L-infinity."""
    if norm == "linf":
        return ((2 * torch.rand(x.shape, generator=gen) - 1) * eps).to(x)
    d = x[0].numel()
    start = _unit(torch.randn(x.shape, generator=gen).to(x))
    radius = eps * torch.rand(len(x), generator=gen).to(x) ** (1.0 / d)
    return start * radius.view(-1, *([1] * (x.dim() - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / norms).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    step: float,
    steps: int,
    bounds: Optional[tuple[float, float]],
    gen: Optional[torch.Generator],
    *,
    norm: Literal["l2", "linf"] = "l2",
    targeted: bool = True,
    random_start: bool = True,
) -> torch.Tensor:
    """Projected gradient steps on every row at once: towards `labels`
    (targeted: down the cross-entropy of the target) or away from them
    (untargeted: up the cross-entropy of the true label). Each step moves
    the perturbation by `step` along the normalised gradient ("l2") or its
    sign ("linf"), projects it back onto the eps-ball and clamps the input
    to `bounds`. The start is a random point of the ball drawn from `gen`,
    or the sample itself (`random_start=False`). FGSM is one untargeted
    L-infinity step of size eps from the sample."""
    delta = _start(x, eps, norm, gen) if random_start else torch.zeros_like(x)
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        g = _loss_gradient(model, x + delta, labels, bounds)
        with torch.no_grad():
            direction = g.sign() if norm == "linf" else _unit(g)
            delta = _project(delta + sign * step * direction, eps, norm)
            delta = clamp_inputs(x + delta, bounds) - x
    return (x + delta).detach()


def targeted_pgd(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    eps: float,
    step: float,
    steps: int,
    bounds: Optional[tuple[float, float]],
    gen: torch.Generator,
) -> torch.Tensor:
    """Targeted L2 PGD for every row at once: a random start inside the
    eps-ball, `steps` normalised gradient steps of size `step` towards
    `target`, each projected back onto the ball (and clamped to `bounds`)."""
    return pgd(model, x, target, eps, step, steps, bounds, gen, norm="l2", targeted=True)
