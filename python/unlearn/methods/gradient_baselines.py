"""The gradient baselines every comparison needs: fine-tuning on the retained
data, gradient ascent on the forget data (NegGrad), both at once (NegGrad+),
and fine-tuning on the forget data with random wrong labels.

All run SGD (momentum 0.9) with the model in eval mode, so BatchNorm keeps
its running statistics instead of re-estimating them from a few forget
samples."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import NonNegative, OpenFraction, Positive, PositiveInt, Split, eval_mode
from .registry import register


def optimize(
    model: nn.Module,
    terms: list[tuple[Split, float]],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 0.0,
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


@register("finetune", "fine-tune on the retained data only", scope="any", needs=("retain",))
def finetune(
    model: nn.Module,
    *,
    forget: Optional[Split],
    retain: Split,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 3,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    weight_decay: NonNegative = 5e-4,
) -> dict:
    """`epochs` passes of SGD over the retained data.

    Options:
        epochs: passes over the retained data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step
        weight_decay: SGD weight decay
    """
    losses = optimize(model, [(retain, 1.0)], _steps(retain, epochs, batch_size), lr, batch_size, seed, weight_decay)
    return {"steps": len(losses), "final_loss": losses[-1]}


@register("neggrad", "gradient ascent on the forget data (NegGrad)", scope="any", needs=("forget",))
def neggrad(
    model: nn.Module,
    *,
    forget: Split,
    retain: Optional[Split],
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 5,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
) -> dict:
    """`epochs` passes of gradient ascent on the forget loss.

    Options:
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step
    """
    losses = optimize(model, [(forget, -1.0)], _steps(forget, epochs, batch_size), lr, batch_size, seed)
    return {"steps": len(losses), "final_forget_loss": -losses[-1]}


@register(
    "neggrad_plus",
    "descent on the retained data plus ascent on the forget data (NegGrad+)",
    scope="any",
    needs=("forget", "retain"),
)
def neggrad_plus(
    model: nn.Module,
    *,
    forget: Split,
    retain: Split,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 1,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    alpha: OpenFraction = 0.95,
) -> dict:
    """Loss alpha * CE(retain) - (1 - alpha) * CE(forget) for `epochs` passes
    over the retained data (forget batches cycle).

    Options:
        epochs: passes over the retained data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step, from each side
        alpha: weight of the retained loss; the forget loss gets 1 - alpha
    """
    terms = [(retain, alpha), (forget, -(1 - alpha))]
    losses = optimize(model, terms, _steps(retain, epochs, batch_size), lr, batch_size, seed)
    return {"steps": len(losses), "final_loss": losses[-1], "alpha": alpha}


@register(
    "random_label",
    "fine-tune on the forget data relabelled at random (plus the retained data)",
    scope="any",
    needs=("forget",),
)
def random_label(
    model: nn.Module,
    *,
    forget: Split,
    retain: Optional[Split],
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 5,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
) -> dict:
    """Uses retain too when given. Each forget sample gets a random label
    other than its own (seeded); `epochs` passes over the forget data, each
    step also on a retained batch when there is one.

    Options:
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step, from each side
    """
    with torch.no_grad(), eval_mode(model):
        classes = model(forget.inputs[:1]).shape[1]
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, classes, (len(forget),), generator=gen).to(forget.labels.device)
    relabelled = Split(forget.inputs, (forget.labels + shift) % classes)
    terms = [(relabelled, 1.0)] + ([(retain, 1.0)] if retain is not None else [])
    losses = optimize(model, terms, _steps(forget, epochs, batch_size), lr, batch_size, seed + 1)
    return {"steps": len(losses), "final_loss": losses[-1]}
