"""Watching the retained data: the check `forget()` runs around every method,
and the guard that lets the optimising methods back off instead of ruining
the model.

Both measure a seeded subsample of the retained data (`retained_sample`), so
the same seed watches the same rows whatever the caller's RNG holds.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import RETAIN_TOLERANCE, Samples, Split, Stream, eval_mode

CHECK_SAMPLES = 1024
"""Retained samples that `forget()` scores before and after a method."""
CHECK_BATCH = 256
"""Samples a batch of those scores takes at most."""
GUARD_SAMPLES = 256
"""Retained samples the guard scores at each of its checks."""
GUARD_CHECKS = 10
"""Most checks of the guard during a run, besides those at its start and end."""
MAX_BACKOFFS = 3
"""Halvings of the learning rate the guard tries before it stops early."""


def retained_sample(samples: Optional[Samples], seed: int, size: int) -> Optional[Split]:
    """`size` retained samples drawn with `seed`, in memory: the rows
    `torch.randperm(len, generator seeded with seed)[:size]` of tensors (all
    of them, in order, when there are no more than `size`), a reservoir
    sample of one pass over a Stream (read once per stream and seed)."""
    if samples is None:
        return None
    if isinstance(samples, Stream):
        return samples.memo_sample(size, seed)
    if len(samples) <= size:
        return samples
    return samples.sample(size, torch.Generator().manual_seed(seed))


def guard_probe(retain: Optional[Samples], seed: int) -> Optional[Split]:
    """The guard's probe: GUARD_SAMPLES retained samples drawn like those of
    `forget()`'s check (the first of its rows when the retained data has
    more than CHECK_SAMPLES, or is a Stream, whose check sample is then read
    once for both); None without retained data."""
    if not isinstance(retain, Stream):
        return retained_sample(retain, seed, GUARD_SAMPLES)
    sample = retained_sample(retain, seed, CHECK_SAMPLES)
    return Split(sample.inputs[:GUARD_SAMPLES], sample.labels[:GUARD_SAMPLES])


def retained_scores(model: nn.Module, split: Split, batch_size: int = CHECK_BATCH) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of `model` on `split`, in eval mode
    without gradients (in batches, so a large model's activations stay small)."""
    correct, loss = 0, 0.0
    with torch.no_grad(), eval_mode(model):
        for inputs, labels in split.batches(batch_size):
            out = model(inputs)
            correct += int((out.argmax(1) == labels).sum())
            loss += float(F.cross_entropy(out.double(), labels, reduction="sum"))
    return correct / len(split), loss / len(split)


def _take_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    params: list[torch.Tensor],
    masks: Optional[list[torch.Tensor]] = None,
    weight_decay: float = 0.0,
) -> bool:
    """Steps on `loss` when it and every gradient are finite; says whether it
    did. With `masks`, each gradient plus `weight_decay` times its parameter
    is multiplied by the parameter's mask first (the optimizer then has no
    weight decay of its own), so masked-out entries keep their value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if masks is not None:
        for p, mask in zip(params, masks):
            if p.grad is not None:
                p.grad.add_(p.detach(), alpha=weight_decay).mul_(mask)
    grads = (p.grad for p in params if p.grad is not None)
    finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads)
    if finite:
        optimizer.step()
    return finite


class _Guard:
    """The last good weights and optimizer state of a run, and the back-offs.

    A check passes when every parameter is finite and, given a probe of
    retained samples, its loss is finite and its accuracy is at most
    `RETAIN_TOLERANCE` below the start's. A passing check keeps the state;
    a failed one (or a non-finite step) restores the last kept state and
    halves the learning rate, up to `MAX_BACKOFFS` times, then stops."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, probe: Optional[Split], steps: int):
        self.model, self.optimizer, self.probe = model, optimizer, probe
        self.every = max(1, math.ceil(steps / GUARD_CHECKS))
        self.lrs = [optimizer.param_groups[0]["lr"]]
        self.start = None if probe is None else retained_scores(model, probe)[0]
        self.stopped = False
        self.keep(0)

    def keep(self, step: int) -> None:
        """Remembers the state after `step` kept steps as the last good one."""
        self.step = step
        self.weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.state = copy.deepcopy(self.optimizer.state_dict())

    def holds(self, step: int) -> bool:
        """Checks the model after `step` kept steps; keeps it when it passes."""
        if step == self.step:
            return True
        ok = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if ok and self.probe is not None:
            accuracy, loss = retained_scores(self.model, self.probe)
            ok = math.isfinite(loss) and accuracy >= self.start - RETAIN_TOLERANCE
        if ok:
            self.keep(step)
        return ok

    def back_off(self) -> int:
        """Restores the last good state; halves the learning rate, or stops
        after `MAX_BACKOFFS` halvings. Returns the step to go on from."""
        self.model.load_state_dict(self.weights)
        self.optimizer.load_state_dict(self.state)
        if len(self.lrs) > MAX_BACKOFFS:
            self.stopped = True
        else:
            self.lrs.append(self.lrs[-1] / 2)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lrs[-1]
        return self.step

    def report(self) -> dict[str, Any]:
        return {
            "backoffs": len(self.lrs) - 1,
            "lr": self.lrs[-1],
            "stopped_early": self.stopped,
            "probe_samples": 0 if self.probe is None else len(self.probe),
        }


def descend(
    model: nn.Module,
    loss_fn: Callable[[], Optional[torch.Tensor]],
    steps: int,
    lr: float,
    *,
    weight_decay: float = 0.0,
    probe: Optional[Split] = None,
    guard: bool = True,
    mask: Optional[dict[str, torch.Tensor]] = None,
    optimizer: Literal["sgd", "adam"] = "sgd",
    schedule: Optional[Callable[[int], float]] = None,
) -> tuple[list[float], Optional[dict[str, Any]]]:
    """Up to `steps` SGD steps (momentum 0.9, model in eval mode; Adam with
    `optimizer="adam"`) on `loss_fn()`, which returns None when the run is
    done. Returns the loss of every kept step and the guard's report (None
    without a guard). A `mask` (a 0/1 tensor per trainable parameter, by
    name) confines the steps, weight decay included, to the entries it marks.

    `schedule(step)`, called with the number of kept steps just before each
    `loss_fn()`, gives the factor of the learning rate for that step (a step
    decay, or the phase of an alternating run); the guard's halvings apply
    on top of it.

    With `guard`, a non-finite step, or a failed check (at the start, every
    ceil(steps / GUARD_CHECKS) kept steps and at the end: a dozen forward
    passes over the `probe` of retained samples in a run without back-offs),
    sends the run back to its last good state at half the learning rate;
    after MAX_BACKOFFS halvings it stops early there. Without it, a
    non-finite step raises. Either way a run that never makes a finite step
    raises ValueError naming lr."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    masks = None if mask is None else [mask[name].to(p) for name, p in named]
    decay = weight_decay if masks is None else 0.0  # a masked run decays the marked entries itself
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    watch = _Guard(model, opt, probe, steps) if guard else None
    losses: list[float] = []
    stepped = False
    with eval_mode(model):
        while watch is None or not watch.stopped:
            if schedule is not None and len(losses) < steps:
                base = lr if watch is None else watch.lrs[-1]
                for group in opt.param_groups:
                    group["lr"] = base * schedule(len(losses))
            loss = loss_fn() if len(losses) < steps else None
            if loss is None:
                if watch is None or watch.holds(len(losses)):
                    break
            elif _take_step(opt, loss, params, masks, weight_decay):
                losses.append(float(loss.detach()))
                stepped = True
                if watch is None or len(losses) % watch.every or watch.holds(len(losses)):
                    continue
            elif watch is None or (not stepped and len(watch.lrs) > MAX_BACKOFFS):
                tried = ", ".join(f"{r:g}" for r in (watch.lrs if watch else [lr]))
                raise ValueError(f"lr: the loss diverged (non-finite loss or gradients) at lr {tried}: lower lr")
            del losses[watch.back_off() :]
    return losses, None if watch is None else watch.report()
