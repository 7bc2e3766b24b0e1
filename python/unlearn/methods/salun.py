"""SalUn, saliency unlearning (Fan, Liu, Zhang, Wong, Wei, Liu; ICLR 2024):
find the weights whose forget-loss gradient is largest, then unlearn by
updating those weights alone, leaving the rest exactly as trained."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import NonNegative, Positive, PositiveInt, Range, Samples, eval_mode, first_inputs, output_classes
from .gradient_baselines import _report, _steps, optimize, wrong_labels
from .quality import guard_probe
from .registry import register

Fraction = Annotated[float, Range(0, 1, low_open=True)]
"""A fraction in (0, 1]."""


def saliency_mask(model: nn.Module, forget: Samples, fraction: float, batch_size: int) -> dict[str, torch.Tensor]:
    """SalUn's weight saliency: the magnitude of the gradient of the forget
    loss (cross-entropy summed over the forget data, one pass, model in eval
    mode) at the trained weights, ranked over all trainable parameters at
    once; the `fraction` of entries with the largest magnitude get 1, the
    rest 0 (a hard threshold; ties go to the earlier entry). Returns a 0/1
    tensor per trainable parameter name."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    total = [torch.zeros_like(p) for p in params]
    with eval_mode(model):
        for inputs, labels in forget.batches(batch_size):
            loss = F.cross_entropy(model(inputs), labels, reduction="sum")
            for t, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
                if g is not None:
                    t += g
    magnitude = torch.cat([t.abs().flatten() for t in total])
    order = torch.argsort(magnitude, descending=True, stable=True)
    flat = torch.zeros_like(magnitude)
    flat[order[: int(fraction * len(magnitude))]] = 1.0
    return {name: m.view_as(p) for (name, p), m in zip(named, flat.split([p.numel() for p in params]))}


@register(
    "salun",
    "random labels on the forget data (plus the retained data) in the weights salient to it only (SalUn)",
    scope="any",
    needs=("forget", "retain"),
    controls=("lr", "epochs", "saliency"),
)
def salun(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    variant: Literal["random_label", "gradient_ascent"] = "random_label",
    saliency: Fraction = 0.5,
    epochs: PositiveInt = 10,
    lr: Positive = 0.013,
    batch_size: PositiveInt = 64,
    weight_decay: NonNegative = 5e-4,
    guard: bool = True,
) -> dict:
    """A saliency mask (`saliency_mask`), then SGD on the masked weights
    only; the other weights keep their exact values. With variant
    "random_label" (the paper's SalUn) every step takes a forget batch,
    each sample given a random label other than its own (drawn afresh at
    every draw, seeded), and a retained batch with its true labels, their
    mean losses weighted by the two sets' sizes, so an epoch (ceil((forget
    + retained) / batch_size) steps) weighs every sample as one pass over
    their union does, as in the authors' code for CIFAR-100 (on CIFAR-10
    it alternates a pass over each; on a model as confident as the digits
    CNN a pass over the forget data alone costs the retained data more than
    the guard allows). With "gradient_ascent", each epoch is a pass of
    gradient ascent on the forget data alone; the retained data then only
    serves the guard. Paper defaults: saliency at the median (the top 50%
    of weights), 10 epochs, lr 0.013 (the authors' CIFAR-10 setting), SGD
    with momentum 0.9 and weight decay 5e-4 (applied, like the steps, to the
    salient weights only). The batch is 64, as for the other baselines,
    instead of the authors' 256 on CIFAR-10's 45,000 samples, so that data
    of a few thousand samples still gets a few dozen steps per epoch.
    Gradient ascent wants a far lower lr (the authors' scripts run plain
    gradient ascent at 1e-4); at the default the guard backs off.

    Options:
        variant: "random_label" (SalUn) or "gradient_ascent" (SalUn on NegGrad, forget data only)
        saliency: fraction of the weights updated: those with the largest forget-loss gradient magnitude
        epochs: passes over forget and retained data together (gradient_ascent: over the forget data)
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step, from each side
        weight_decay: SGD weight decay, on the salient weights only
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    mask = saliency_mask(model, forget, saliency, batch_size)
    if variant == "gradient_ascent":
        terms, steps, relabel = [(forget, -1.0)], _steps(forget, epochs, batch_size), None
    else:
        classes = output_classes(model, first_inputs(forget), "forget")
        gen = torch.Generator().manual_seed(seed + 1)

        def relabel(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return wrong_labels(labels, classes, gen)

        total = len(forget) + len(retain)
        terms = [(forget, len(forget) / total), (retain, len(retain) / total)]
        steps = epochs * math.ceil(total / batch_size)
    run = optimize(
        model,
        terms,
        steps,
        lr,
        batch_size,
        seed,
        weight_decay=weight_decay,
        probe=guard_probe(retain, seed),
        guard=guard,
        relabel=relabel,
        mask=mask,
    )
    report = _report(run, "final_forget_loss", sign=-1.0) if variant == "gradient_ascent" else _report(run)
    salient = int(sum(m.sum() for m in mask.values()))
    return {**report, "variant": variant, "salient": salient, "parameters": sum(m.numel() for m in mask.values())}
