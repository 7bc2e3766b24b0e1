"""The forget requests an audit runs on the embedded digits: a class, random
samples (a count or a fraction), given indices, or mislabelled samples
injected before training.

Mislabelled samples are the request where retraining really changes the
predictions: the originals learn the wrong labels by heart, a model retrained
without those samples predicts their true class. Random samples of a
well-generalising model are classified correctly by retrained models too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .. import data as data_module
from .._core import Split, check_seed
from ..compare import digits_request


@dataclass
class AuditRequest:
    """What the originals are trained on (`train`: the digits training split,
    with the mislabelled samples' labels changed for that request), the forget
    and retain samples, and a `description` for reports."""

    train: Split
    forget: Split
    retain: Split
    forget_classes: Optional[list[int]]
    description: str

    @property
    def kind(self) -> str:
        return "class" if self.forget_classes is not None else "instance"


def audit_request(
    *,
    forget_class: Optional[int] = None,
    forget_samples: Optional[int] = None,
    forget_fraction: Optional[float] = None,
    forget_indices: Optional[Sequence[int]] = None,
    mislabelled: Optional[int] = None,
    seed: int = 0,
) -> AuditRequest:
    """One request on the digits training split; exactly one of the request
    arguments is given. Random samples, the fraction and the mislabelled
    samples (and their wrong labels) are drawn from `seed`."""
    seed = check_seed(seed)
    given = {
        "forget_class": forget_class,
        "forget_samples": forget_samples,
        "forget_fraction": forget_fraction,
        "forget_indices": forget_indices,
        "mislabelled": mislabelled,
    }
    named = [name for name, value in given.items() if value is not None]
    if len(named) != 1:
        raise ValueError(f"give exactly one of {', '.join(given)}; got {', '.join(named) or 'none'}")
    digits = data_module.digits()
    if mislabelled is not None:
        return _mislabelled(digits, mislabelled, seed)
    if forget_fraction is not None:
        forget_samples = _count(forget_fraction, len(digits.train))
    request = digits_request(
        digits, forget_samples=forget_samples, forget_indices=forget_indices, forget_class=forget_class, seed=seed
    )
    if forget_class is not None:
        description = f"class {forget_class} ({len(request.forget)} samples)"
    elif forget_indices is not None:
        description = f"{len(request.forget)} given samples"
    else:
        description = f"{len(request.forget)} random samples"
    return AuditRequest(digits.train, request.forget, request.retain, request.forget_classes, description)


def _count(fraction: float, n: int) -> int:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"forget_fraction must be a number in (0, 1), got {fraction!r}")
    return max(1, round(fraction * n))


def _mislabelled(digits: data_module.TrainTest, count: int, seed: int) -> AuditRequest:
    """`count` random training samples given a wrong label (uniform over the
    other classes); the originals are trained with those labels."""
    n = len(digits.train)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count < n:
        raise ValueError(f"mislabelled must be an integer in 1..{n - 1}, got {count!r}")
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(n, generator=generator)[:count].sort().values
    shift = torch.randint(1, digits.classes, (count,), generator=generator)
    labels = digits.train.labels.clone()
    labels[index] = (labels[index] + shift) % digits.classes
    keep = torch.ones(n, dtype=torch.bool)
    keep[index] = False
    inputs = digits.train.inputs
    return AuditRequest(
        Split(inputs, labels),
        Split(inputs[index], labels[index]),
        Split(inputs[keep], labels[keep]),
        None,
        f"{count} mislabelled samples",
    )
