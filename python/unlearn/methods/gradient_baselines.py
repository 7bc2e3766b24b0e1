"""The gradient baselines every comparison needs: fine-tuning on the retained
data, gradient ascent on the forget data (NegGrad), both at once (NegGrad+),
and fine-tuning on the forget data with random wrong labels.

All run SGD (momentum 0.9) with the model in eval mode, so BatchNorm keeps
its running statistics instead of re-estimating them from a few forget
samples, under the guard of `quality.descend` unless `guard=False`."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import NonNegative, OpenFraction, Positive, PositiveInt, Samples, Split, Stream, eval_mode, first_inputs
from .quality import descend, guard_probe
from .registry import register


def _cycle(samples: Samples, batch_size: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of `samples`: tensors reshuffled (seeded) whenever fewer
    than a batch of rows is left, a Stream read pass after pass (a shuffling
    DataLoader reshuffles, augmentation is drawn again)."""
    if isinstance(samples, Stream):
        while True:
            yield from samples.batches(batch_size)
    order = torch.empty(0, dtype=torch.int64)
    while True:
        if len(order) < min(batch_size, len(samples)):
            order = torch.randperm(len(samples), generator=gen)
        rows, order = order[:batch_size].to(samples.labels.device), order[batch_size:]
        yield samples.inputs[rows], samples.labels[rows]


def optimize(
    model: nn.Module,
    terms: list[tuple[Samples, float]],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    *,
    weight_decay: float = 0.0,
    probe: Optional[Split] = None,
    guard: bool = True,
    relabel: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    mask: Optional[dict[str, torch.Tensor]] = None,
    penalty: Optional[Callable[[], torch.Tensor]] = None,
    optimizer: Literal["sgd", "adam"] = "sgd",
) -> tuple[list[float], Optional[dict[str, Any]]]:
    """`steps` SGD steps on sum_t weight_t * mean CE over a batch of samples_t
    (`_cycle`), plus `penalty()` when given. A negative weight ascends.
    `relabel(inputs, labels)` gives the first term's labels a batch at a
    time. `mask` confines the steps to some weights, `optimizer` is "sgd" or
    "adam" (`quality.descend`). Returns the loss of every kept step and the
    guard's report
    (`quality.descend`, which watches the retained `probe`)."""
    gen = torch.Generator().manual_seed(seed)
    streams = [_cycle(samples, batch_size, gen) for samples, _ in terms]

    def batch_loss() -> torch.Tensor:
        loss = 0.0
        for t, (stream, (_, weight)) in enumerate(zip(streams, terms)):
            inputs, labels = next(stream)
            if t == 0 and relabel is not None:
                labels = relabel(inputs, labels)
            loss = loss + weight * F.cross_entropy(model(inputs), labels)
        return loss if penalty is None else loss + penalty()

    return descend(
        model,
        batch_loss,
        steps,
        lr,
        weight_decay=weight_decay,
        probe=probe,
        guard=guard,
        mask=mask,
        optimizer=optimizer,
    )


def wrong_labels(labels: torch.Tensor, classes: int, gen: torch.Generator) -> torch.Tensor:
    """A label other than each of `labels`, drawn uniformly among the other
    `classes - 1` (seeded, on the CPU, then moved to the labels' device)."""
    shift = torch.randint(1, classes, (len(labels),), generator=gen).to(labels.device)
    return (labels + shift) % classes


def _steps(samples: Samples, epochs: int, batch_size: int) -> int:
    if isinstance(samples, Stream):
        return epochs * samples.steps(batch_size)
    return epochs * math.ceil(len(samples) / batch_size)


def _report(run: tuple[list[float], Optional[dict[str, Any]]], key: str = "final_loss", sign: float = 1.0) -> dict:
    """The steps kept, `sign` times the last kept loss under `key` (None when
    no step was kept) and the guard's report."""
    losses, guard = run
    return {"steps": len(losses), key: sign * losses[-1] if losses else None, "guard": guard}


@register("finetune", "fine-tune on the retained data only", scope="any", needs=("retain",), controls=("lr", "epochs"))
def finetune(
    model: nn.Module,
    *,
    forget: Optional[Samples],
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 3,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    weight_decay: NonNegative = 5e-4,
    guard: bool = True,
) -> dict:
    """`epochs` passes of SGD over the retained data.

    Options:
        epochs: passes over the retained data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step
        weight_decay: SGD weight decay
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    steps = _steps(retain, epochs, batch_size)
    probe = guard_probe(retain, seed)
    run = optimize(
        model, [(retain, 1.0)], steps, lr, batch_size, seed, weight_decay=weight_decay, probe=probe, guard=guard
    )
    return _report(run)


@register(
    "neggrad", "gradient ascent on the forget data (NegGrad)", scope="any", needs=("forget",), controls=("lr", "epochs")
)
def neggrad(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Optional[Samples],
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 5,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    guard: bool = True,
) -> dict:
    """`epochs` passes of gradient ascent on the forget loss. Retained data,
    when given, serves only as the guard's probe.

    Options:
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    steps = _steps(forget, epochs, batch_size)
    run = optimize(model, [(forget, -1.0)], steps, lr, batch_size, seed, probe=guard_probe(retain, seed), guard=guard)
    return _report(run, "final_forget_loss", sign=-1.0)


@register(
    "neggrad_plus",
    "descent on the retained data plus ascent on the forget data (NegGrad+)",
    scope="any",
    needs=("forget", "retain"),
    controls=("lr", "epochs", "alpha"),
)
def neggrad_plus(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 1,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    alpha: OpenFraction = 0.95,
    guard: bool = True,
) -> dict:
    """Loss alpha * CE(retain) - (1 - alpha) * CE(forget) for `epochs` passes
    over the retained data (forget batches cycle).

    Options:
        epochs: passes over the retained data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step, from each side
        alpha: weight of the retained loss; the forget loss gets 1 - alpha
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    terms = [(retain, alpha), (forget, -(1 - alpha))]
    steps = _steps(retain, epochs, batch_size)
    run = optimize(model, terms, steps, lr, batch_size, seed, probe=guard_probe(retain, seed), guard=guard)
    return {**_report(run), "alpha": alpha}


@register(
    "random_label",
    "fine-tune on the forget data relabelled at random (plus the retained data)",
    scope="any",
    needs=("forget",),
    controls=("lr", "epochs"),
)
def random_label(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Optional[Samples],
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: PositiveInt = 5,
    lr: Positive = 0.01,
    batch_size: PositiveInt = 64,
    guard: bool = True,
) -> dict:
    """Uses retain too when given. Each forget sample gets a random label
    other than its own (seeded; from a DataLoader, drawn again on every
    pass); `epochs` passes over the forget data, each
    step also on a retained batch when there is one.

    Options:
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: samples per step, from each side
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    with torch.no_grad(), eval_mode(model):
        classes = model(first_inputs(forget)).shape[1]
    gen = torch.Generator().manual_seed(seed)
    if isinstance(forget, Split):
        relabelled, relabel = Split(forget.inputs, wrong_labels(forget.labels, classes, gen)), None
    else:

        def relabel(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return wrong_labels(labels, classes, gen)

        relabelled = forget
    terms = [(relabelled, 1.0)] + ([(retain, 1.0)] if retain is not None else [])
    steps = _steps(forget, epochs, batch_size)
    run = optimize(
        model, terms, steps, lr, batch_size, seed + 1, probe=guard_probe(retain, seed), guard=guard, relabel=relabel
    )
    return _report(run)
