"""Selective synaptic dampening (Foster, Schoepf, Brintrup; AAAI 2024):
shrink the parameters that matter far more to the forget data than to the
training data as a whole. No training."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Positive, PositiveInt, Samples, eval_mode, joined
from .registry import register


def batch_importance(
    model: torch.nn.Module, samples: Samples, batch_size: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Mean over shuffled batches of the squared gradient of the batch-mean
    loss, per parameter: SSD's importance. Gradients of samples that disagree
    cancel inside a batch, so data a parameter serves coherently (one class,
    a few samples) scores high against the whole training set."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    batches = 0
    for inputs, labels in samples.shuffled(batch_size, gen):
        loss = F.cross_entropy(model(inputs), labels)
        for name, g in zip(params, torch.autograd.grad(loss, list(params.values()))):
            total[name] += g.square()
        batches += 1
    return {name: t / batches for name, t in total.items()}


@register(
    "ssd",
    "selective synaptic dampening of forget-specific parameters (Foster et al.)",
    scope="any",
    needs=("forget", "retain"),
    controls=("alpha", "dampening"),
)
def ssd(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    alpha: Positive = 10.0,
    dampening: Positive = 1.0,
    batch_size: PositiveInt = 64,
) -> dict:
    """Importances as in the paper: mean squared gradients of batch-mean
    losses (`batch_importance`), I_D over all training data (retain +
    forget), I_f over the forget data, model in eval mode. Every parameter
    with I_f > alpha I_D (BatchNorm included, as in the paper) is multiplied
    by min(dampening I_D / I_f, 1). Paper defaults: alpha 10, lambda
    (dampening) 1.

    Options:
        alpha: a parameter is dampened when its forget importance exceeds alpha times its overall importance
        dampening: lambda: the factor is min(dampening * I_D / I_f, 1)
        batch_size: samples per batch of the importance estimates
    """
    everything = joined(retain, forget, "retain and forget")
    gen = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        whole = batch_importance(model, everything, batch_size, gen)
        specific = batch_importance(model, forget, batch_size, gen)
    dampened = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in whole:
                continue
            selected = specific[name] > alpha * whole[name]
            factor = (dampening * whole[name] / specific[name].clamp_min(torch.finfo(p.dtype).tiny)).clamp(max=1.0)
            p.mul_(torch.where(selected, factor, torch.ones_like(factor)))
            dampened += int(selected.sum())
    total = sum(p.numel() for p in model.parameters())
    return {"dampened": dampened, "parameters": total, "alpha": alpha, "dampening": dampening}
