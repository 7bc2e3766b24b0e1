"""Per-example outputs of models on the forget data: the logit-scaled
confidence of the true class under one model, or under each unlearned and
each retrained model.

This is what the per-example metrics (`forget_quality`, `lira_attack`) compare:
for each forget example, the empirical distribution of the confidence over the
unlearned models against the one over the retrained models.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .._core import Data, as_split, check_model, eval_mode, model_device, seeded_rng

BATCH = 512


@dataclass
class Confidences:
    """Logit-scaled confidences, float64 on the CPU: `unlearned` and
    `retrained` have shape (models, examples), `labels` shape (examples,), in
    the order the forget data was read."""

    unlearned: torch.Tensor
    retrained: torch.Tensor
    labels: torch.Tensor


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of the true class, p the softmax probability, in float64.

    Computed in log space: log p is the true class's log-softmax and
    log(1 - p) the log-sum-exp of the other classes' log-softmax, so neither
    p -> 1 (where 1 - p would round to 0) nor p -> 0 loses precision.
    """
    log_probs = torch.log_softmax(logits.double(), dim=1)
    true = log_probs.gather(1, labels[:, None]).squeeze(1)
    is_true = torch.zeros_like(log_probs, dtype=torch.bool).scatter_(1, labels[:, None], True)
    rest = log_probs.masked_fill(is_true, float("-inf")).logsumexp(dim=1)
    return true - rest


def check_models(models: Any, name: str, minimum: int = 2) -> list[nn.Module]:
    """A list (or tuple, or nn.ModuleList) of at least `minimum` models."""
    if isinstance(models, nn.ModuleList):
        models = list(models)
    if isinstance(models, nn.Module) or not isinstance(models, (list, tuple)):
        raise TypeError(f"{name} must be a list of models (torch.nn.Module), got {type(models).__name__}")
    if len(models) < minimum:
        raise ValueError(f"{name} must hold at least {minimum} models, got {len(models)}")
    return [check_model(model, f"{name}[{i}]") for i, model in enumerate(models)]


def check_sides(unlearned: Any, retrained: Any) -> tuple[list[nn.Module], list[nn.Module]]:
    """Two lists of at least two models each, as many on each side, all on one device."""
    unlearned = check_models(unlearned, "unlearned")
    retrained = check_models(retrained, "retrained")
    if len(retrained) != len(unlearned):
        raise ValueError(f"retrained must hold as many models as unlearned ({len(unlearned)}), got {len(retrained)}")
    device = model_device(unlearned[0])
    for name, models in (("unlearned", unlearned), ("retrained", retrained)):
        for i, model in enumerate(models):
            if model_device(model) != device:
                raise ValueError(f"{name}[{i}] is on {model_device(model)} but unlearned[0] is on {device}")
    return unlearned, retrained


def _model_confidence(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, name: str) -> torch.Tensor:
    try:
        out = model(inputs)
    except RuntimeError as error:
        raise ValueError(f"{name} cannot take the forget inputs of shape {tuple(inputs.shape[1:])}: {error}") from error
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != inputs.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return class scores of shape (batch, classes), got {shape}")
    classes = out.shape[1]
    if classes < 2:
        raise ValueError(f"{name} must have at least 2 outputs to score a confidence, got {classes}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"forget: labels must lie in 0..{classes - 1} ({name} has {classes} outputs), got {low}..{high}"
        )
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} returned non-finite scores on the forget data")
    return logit_confidence(out, labels).cpu()


def _read(models: dict[str, nn.Module], forget: Data) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Each named model's confidence on every forget example, and the labels,
    from one pass over `forget`: every model scores a batch before the next is
    drawn, so a shuffling DataLoader still lines the examples up across models.
    Models run in eval mode without gradients (modes restored afterwards);
    torch's global RNG is seeded alike for every read (so a DataLoader that
    shuffles with it reads in the same order each time), then restored."""
    first = next(iter(models.values()))
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in models}
    labels = []
    with ExitStack() as stack:
        stack.enter_context(seeded_rng(0, model_device(first)))
        for model in models.values():
            stack.enter_context(eval_mode(model))
        stack.enter_context(torch.no_grad())
        for inputs, batch_labels in as_split(forget, "forget", first).batches(BATCH):
            for name, model in models.items():
                parts[name].append(_model_confidence(model, inputs, batch_labels, name))
            labels.append(batch_labels.cpu())
    return {name: torch.cat(scores) for name, scores in parts.items()}, torch.cat(labels)


def model_confidences(model: nn.Module, forget: Data) -> torch.Tensor:
    """The logit-scaled confidence of every forget example under one model:
    (examples,) float64 on the CPU, in the order `forget` was read.

    `forget` is an (inputs, labels) pair, a Split or a DataLoader on the
    model's device. The model runs in eval mode without gradients (its modes
    are restored afterwards), and torch's global RNG state is left as it was.
    """
    scores, _ = _read({"model": check_model(model)}, forget)
    return scores["model"]


def forget_confidences(unlearned: Sequence[nn.Module], retrained: Sequence[nn.Module], forget: Data) -> Confidences:
    """The logit-scaled confidence of every forget example under every model.

    `unlearned` and `retrained` are lists of at least two models each, as many
    on each side, all on one device; `forget` is an (inputs, labels) pair, a
    Split or a DataLoader on that device. A DataLoader is read once and every
    model scores each batch before the next is drawn, so the examples line up
    across models even when it shuffles. Models run in eval mode without
    gradients (their modes are restored afterwards), and torch's global RNG
    state is left as it was.
    """
    unlearned, retrained = check_sides(unlearned, retrained)
    sides = {"unlearned": unlearned, "retrained": retrained}
    named = {f"{side}[{i}]": model for side, models in sides.items() for i, model in enumerate(models)}
    scores, labels = _read(named, forget)
    stacked = {
        side: torch.stack([scores[f"{side}[{i}]"] for i in range(len(models))]) for side, models in sides.items()
    }
    return Confidences(stacked["unlearned"], stacked["retrained"], labels)


def check_confidences(unlearned: Any, retrained: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two finite (models, examples) tensors of the same shape, at least two
    models and one example, as float64 on the CPU."""
    out = []
    for name, value in (("unlearned_confidences", unlearned), ("retrained_confidences", retrained)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a tensor of shape (models, examples), got {type(value).__name__}")
        if value.dim() != 2 or value.shape[0] < 2 or value.shape[1] < 1:
            raise ValueError(
                f"{name} must have shape (models, examples) with at least 2 models and 1 example, "
                f"got {tuple(value.shape)}"
            )
        if not (value.is_floating_point() and bool(torch.isfinite(value).all())):
            raise ValueError(f"{name} must hold finite floating-point values")
        out.append(value.detach().to("cpu", torch.float64))
    if out[0].shape != out[1].shape:
        raise ValueError(
            f"retrained_confidences must have the shape of unlearned_confidences {tuple(out[0].shape)}, "
            f"got {tuple(out[1].shape)}"
        )
    return out[0], out[1]
