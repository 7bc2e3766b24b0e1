"""Bad teaching (Chundawat et al., "Can Bad Teaching Induce Forgetting?
Unlearning in Deep Networks Using an Incompetent Teacher", AAAI 2023): the
student, initialised from the original model, is distilled from two
teachers at once: the original (competent) one on retained samples and a
randomly initialised (incompetent) one of the same architecture on forget
samples, on the forget samples mixed with a subset of the retained data."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .._core import OpenFraction, Positive, PositiveInt, Samples, Split
from ..training import reinitialize
from .distillation import distill_kl, frozen_copy
from .gradient_baselines import _cycle
from .quality import descend, guard_probe
from .registry import register


@register(
    "bad_teacher",
    "distil from the original on retained samples and from a random model on forget samples (bad teaching)",
    scope="any",
    needs=("forget", "retain"),
    controls=("lr", "epochs"),
)
def bad_teacher(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 1,
    lr: Positive = 1e-4,
    batch_size: PositiveInt = 256,
    retain_fraction: OpenFraction = 0.3,
    temperature: Positive = 1.0,
    guard: bool = True,
) -> dict:
    """Each step distils a batch of `batch_size` samples: forget and retained
    samples in the proportion of the forget set to `retain_fraction` of the
    retained data (the paper's mix, shuffled together). The student's
    softened outputs are pulled by KL toward the incompetent teacher's on
    the forget rows and toward the original's on the retained rows; an epoch
    reads the forget set and that share of the retained data once. The
    incompetent teacher is the model's architecture re-initialised with
    `seed` (`unlearn.training.reinitialize`); both teachers stay frozen in
    eval mode. The defaults are the paper's (KL temperature 1, one epoch,
    Adam with lr 1e-4 and batches of 256, 30% of the retained data).

    With tensors, the retained subset is drawn once with `seed`; from a
    DataLoader, the retained batches are read from it in order (a random
    subset when it shuffles), so that nothing is gathered. The student runs
    in eval mode, as every optimising method here (BatchNorm keeps its
    running statistics). The KL is the batch mean times T^2; the reference
    code averages over classes as well and does not scale, constant factors
    that Adam's normalised steps ignore.

    Options:
        epochs: passes over the forget samples and the retained subset
        lr: Adam learning rate
        batch_size: samples per step, forget and retained together
        retain_fraction: share of the retained data mixed with the forget samples
        temperature: softmax temperature of the KL
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    good = frozen_copy(model)
    bad = reinitialize(frozen_copy(model), seed)
    gen = torch.Generator().manual_seed(seed)
    n_forget = len(forget)
    n_retain = max(1, round(retain_fraction * len(retain)))
    subset = retain.sample(n_retain, gen) if isinstance(retain, Split) else retain
    total = n_forget + n_retain
    forget_rows = max(1, min(batch_size - 1, round(batch_size * n_forget / total)))
    forget_batches = _cycle(forget, forget_rows, gen)
    retain_batches = _cycle(subset, max(1, batch_size - forget_rows), gen)
    steps = epochs * math.ceil(total / batch_size)
    drift: list[float] = []

    def loss_fn() -> torch.Tensor:
        (xf, _), (xr, _) = next(forget_batches), next(retain_batches)
        inputs = torch.cat([xf, xr])
        with torch.no_grad():
            target = torch.cat([bad(xf), good(xr)])
        out = model(inputs)
        drift.append(float(distill_kl(out[: len(xf)].detach(), target[: len(xf)], temperature)))
        return distill_kl(out, target, temperature)

    losses, report = descend(model, loss_fn, steps, lr, probe=guard_probe(retain, seed), guard=guard, optimizer="adam")
    return {
        "steps": len(losses),
        "final_loss": losses[-1] if losses else None,
        "final_forget_kl_to_bad_teacher": drift[-1] if drift else None,
        "forget_rows_per_step": forget_rows,
        "guard": report,
    }
