"""The gradient baselines every comparison needs: fine-tuning on the retained
data, gradient ascent on the forget data (NegGrad), both at once (NegGrad+),
and fine-tuning on the forget data with random wrong labels.

All run SGD (momentum 0.9) with the model in eval mode, so BatchNorm keeps
its running statistics instead of re-estimating them from a few forget
samples. Class requests take the forget classes' samples via
`class_request`."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Split, class_request, eval_mode, register


def _request(forget: Optional[Split], retain: Optional[Split], classes: Optional[list[int]], method: str, needs: str):
    if classes is not None:
        forget, retain = class_request(forget, retain, classes)
    if "forget" in needs and forget is None:
        raise ValueError(f"forget: {method} needs the samples to forget (forget=..., or forget_classes with retain=...)")
    if "retain" in needs and retain is None:
        raise ValueError(f"retain: {method} needs the retained data (retain=...)")
    return forget, retain


def _check(epochs: int, lr: float, batch_size: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def optimize(
    model: nn.Module, terms: list[tuple[Split, float]], steps: int, lr: float, batch_size: int, seed: int, weight_decay: float = 0.0
) -> list[float]:
    """`steps` SGD steps on sum_t weight_t * mean CE over a batch of split_t
    (each split reshuffled, seeded, whenever it runs out). A negative weight
    ascends. Returns the loss of every step."""
    gen = torch.Generator().manual_seed(seed)
    orders = [torch.empty(0, dtype=torch.int64) for _ in terms]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    losses = []
    with eval_mode(model):
        for _ in range(steps):
            loss = 0.0
            for t, (split, weight) in enumerate(terms):
                if len(orders[t]) < min(batch_size, len(split)):
                    orders[t] = torch.randperm(len(split), generator=gen)
                rows, orders[t] = orders[t][:batch_size], orders[t][batch_size:]
                rows = rows.to(split.labels.device)
                loss = loss + weight * F.cross_entropy(model(split.inputs[rows]), split.labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if not all(torch.isfinite(p.grad).all() for p in params if p.grad is not None):
                raise ValueError("the loss diverged (non-finite gradients): lower lr")
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


def _steps(split: Split, epochs: int, batch_size: int) -> int:
    return epochs * math.ceil(len(split) / batch_size)


@register("finetune", "fine-tune on the retained data only", scope="any")
def finetune(model, *, forget, retain, forget_classes, seed=0, epochs=3, lr=0.01, batch_size=64, weight_decay=5e-4):
    """Needs retain. `epochs` passes of SGD over the retained data."""
    _check(epochs, lr, batch_size)
    _, retain = _request(forget, retain, forget_classes, "finetune", "retain")
    losses = optimize(model, [(retain, 1.0)], _steps(retain, epochs, batch_size), lr, batch_size, seed, weight_decay)
    return {"steps": len(losses), "final_loss": losses[-1]}


@register("neggrad", "gradient ascent on the forget data (NegGrad)", scope="any")
def neggrad(model, *, forget, retain, forget_classes, seed=0, epochs=5, lr=0.01, batch_size=64):
    """Needs forget. `epochs` passes of gradient ascent on the forget loss."""
    _check(epochs, lr, batch_size)
    forget, _ = _request(forget, retain, forget_classes, "neggrad", "forget")
    losses = optimize(model, [(forget, -1.0)], _steps(forget, epochs, batch_size), lr, batch_size, seed)
    return {"steps": len(losses), "final_forget_loss": -losses[-1]}


@register("neggrad_plus", "descent on the retained data plus ascent on the forget data (NegGrad+)", scope="any")
def neggrad_plus(model, *, forget, retain, forget_classes, seed=0, epochs=1, lr=0.01, batch_size=64, alpha=0.95):
    """Needs forget and retain. Loss alpha * CE(retain) - (1 - alpha) * CE(forget)
    for `epochs` passes over the retained data (forget batches cycle)."""
    _check(epochs, lr, batch_size)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    forget, retain = _request(forget, retain, forget_classes, "neggrad_plus", "forget retain")
    terms = [(retain, alpha), (forget, -(1 - alpha))]
    losses = optimize(model, terms, _steps(retain, epochs, batch_size), lr, batch_size, seed)
    return {"steps": len(losses), "final_loss": losses[-1], "alpha": alpha}


@register("random_label", "fine-tune on the forget data relabelled at random (plus the retained data)", scope="any")
def random_label(model, *, forget, retain, forget_classes, seed=0, epochs=5, lr=0.01, batch_size=64):
    """Needs forget; uses retain too when given. Each forget sample gets a
    random label other than its own (seeded); `epochs` passes over the
    forget data, each step also on a retained batch when there is one."""
    _check(epochs, lr, batch_size)
    forget, retain = _request(forget, retain, forget_classes, "random_label", "forget")
    with torch.no_grad(), eval_mode(model):
        classes = model(forget.inputs[:1]).shape[1]
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, classes, (len(forget),), generator=gen).to(forget.labels.device)
    relabelled = Split(forget.inputs, (forget.labels + shift) % classes)
    terms = [(relabelled, 1.0)] + ([(retain, 1.0)] if retain is not None else [])
    losses = optimize(model, terms, _steps(forget, epochs, batch_size), lr, batch_size, seed + 1)
    return {"steps": len(losses), "final_loss": losses[-1]}
