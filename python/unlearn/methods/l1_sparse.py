"""l1-sparse unlearning (Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu; NeurIPS
2023, "Model Sparsity Can Simplify Machine Unlearning"): fine-tuning on the
retained data with an l1 penalty on the weights, whose weight decays
linearly over the run, so the model is pulled towards a sparse one early and
left to recover its accuracy late."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._core import NonNegative, Positive, PositiveInt, Samples
from .gradient_baselines import _report, _steps, optimize
from .quality import guard_probe
from .registry import register


def l1_norm(model: nn.Module) -> torch.Tensor:
    """The sum of the absolute values of every trainable parameter."""
    return sum(p.abs().sum() for p in model.parameters() if p.requires_grad)


def penalty_weight(gamma: float, epoch: int, epochs: int) -> float:
    """The weight of the l1 penalty in `epoch` (from 0) of `epochs`:
    gamma * (1 - epoch / epochs), the paper's linear decay."""
    return gamma * (1 - epoch / epochs)


@register(
    "l1_sparse",
    "fine-tune on the retained data with a linearly decaying l1 penalty (l1-sparse, Jia et al.)",
    scope="any",
    needs=("retain",),
    controls=("lr", "epochs", "gamma"),
)
def l1_sparse(
    model: nn.Module,
    *,
    forget: Optional[Samples],
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 10,
    lr: Positive = 0.01,
    gamma: NonNegative = 5e-4,
    batch_size: PositiveInt = 64,
    weight_decay: NonNegative = 5e-4,
    guard: bool = True,
) -> dict:
    """Loss CE(retained batch) + gamma_e * ||theta||_1 (every trainable
    parameter) for `epochs` passes over the retained data, where epoch e
    (from 0) has gamma_e = gamma * (1 - e / epochs): the paper's linearly
    decreasing schedule, stepped per epoch as in the authors' code. Paper
    defaults: gamma 5e-4, 10 epochs, lr 0.01, SGD with momentum 0.9 and
    weight decay 5e-4. The batch is 64, as for the other baselines, instead
    of the authors' 256 on CIFAR-10's 45,000 samples. The forget data is not
    used.

    Options:
        epochs: passes over the retained data
        lr: SGD learning rate (momentum 0.9)
        gamma: initial weight of the l1 penalty; it falls linearly, epoch by epoch, to gamma / epochs
        batch_size: samples per step
        weight_decay: SGD weight decay
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    per_epoch = _steps(retain, 1, batch_size)
    calls = [0]

    def penalty() -> torch.Tensor:
        epoch = min(calls[0] // per_epoch, epochs - 1)
        calls[0] += 1
        return penalty_weight(gamma, epoch, epochs) * l1_norm(model)

    before = float(l1_norm(model).detach())
    run = optimize(
        model,
        [(retain, 1.0)],
        epochs * per_epoch,
        lr,
        batch_size,
        seed,
        weight_decay=weight_decay,
        probe=guard_probe(retain, seed),
        guard=guard,
        penalty=penalty,
    )
    after = float(l1_norm(model).detach())
    return {**_report(run), "gamma": gamma, "l1_norm_before": before, "l1_norm_after": after}
