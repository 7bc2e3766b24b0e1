"""Per-sample outputs, accuracy, gradient norms, and distances between a model
and a reference (usually the model retrained without the forget data)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .._core import Samples

BATCH = 512


@dataclass
class Outputs:
    """What the attacks and distances need from one pass over a split:
    log-softmax outputs (float64) and the labels."""

    log_probs: torch.Tensor
    labels: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        """Per-sample cross-entropy."""
        return -self.log_probs.gather(1, self.labels[:, None]).squeeze(1)

    @property
    def entropy(self) -> torch.Tensor:
        """Per-sample entropy of the softmax output (natural log)."""
        return -(self.log_probs.exp() * self.log_probs).sum(1)

    @property
    def confidence(self) -> torch.Tensor:
        """Per-sample softmax probability of the true class."""
        return self.loss.neg().exp()

    @property
    def accuracy(self) -> float:
        return float((self.log_probs.argmax(1) == self.labels).double().mean())

    def subset(self, mask: torch.Tensor) -> "Outputs":
        return Outputs(self.log_probs[mask], self.labels[mask])


def outputs(model: nn.Module, samples: Samples, reference: Optional[nn.Module] = None) -> list[Outputs]:
    """Runs `model` (already in the wanted mode) over `samples` in batches,
    and `reference` on the same batches when given (one pass, so the two
    agree sample by sample even on a shuffling or augmenting DataLoader)."""
    models = [model] if reference is None else [model, reference]
    parts: list[list[torch.Tensor]] = [[] for _ in models]
    labels = []
    with torch.no_grad():
        for inputs, batch_labels in samples.batches(BATCH):
            for part, net in zip(parts, models):
                part.append(torch.log_softmax(net(inputs).double(), dim=1))
            labels.append(batch_labels)
    every = torch.cat(labels)
    return [Outputs(torch.cat(part), every) for part in parts]


def gradient_norm(model: nn.Module, samples: Samples, l2: float = 0.0) -> float:
    """L2 norm of the gradient of mean cross-entropy over `samples` plus
    l2/2 ||w||^2, with respect to every trainable parameter."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        return 0.0
    total = [torch.zeros_like(p) for p in parameters]
    count = 0
    with torch.enable_grad():
        for inputs, labels in samples.batches(BATCH):
            loss = nn.functional.cross_entropy(model(inputs), labels, reduction="sum")
            for acc, grad in zip(total, torch.autograd.grad(loss, parameters, allow_unused=True)):
                if grad is not None:
                    acc += grad
            count += len(labels)
    squared = sum(
        float(((acc.double() / count + l2 * p.detach().double()) ** 2).sum()) for acc, p in zip(total, parameters)
    )
    return math.sqrt(squared)


def js_divergence(first: Outputs, second: Outputs) -> float:
    """Mean Jensen-Shannon divergence (natural log, in [0, ln 2]) between two
    models' softmax outputs on the same samples."""
    log_mid = torch.logaddexp(first.log_probs, second.log_probs) - math.log(2.0)

    def kl_to_mid(log_p: torch.Tensor) -> torch.Tensor:
        return (log_p.exp() * (log_p - log_mid)).sum(1)

    per_sample = 0.5 * (kl_to_mid(first.log_probs) + kl_to_mid(second.log_probs))
    return float(per_sample.clamp(min=0.0).mean())


def activation_distance(first: Outputs, second: Outputs) -> float:
    """Mean L2 distance between two models' softmax outputs on the same samples."""
    return float((first.log_probs.exp() - second.log_probs.exp()).norm(dim=1).mean())


def parameter_distance(model: nn.Module, reference: nn.Module) -> float:
    """L2 norm of the difference of all parameters; the two models must have
    the same parameter names and shapes."""
    ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
    if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
        raise ValueError("reference must have the same architecture as model (parameter names and shapes differ)")
    squared = sum(
        float(((ours[k].detach().double() - theirs[k].detach().to(ours[k].device, torch.float64)) ** 2).sum())
        for k in ours
    )
    return math.sqrt(squared)
