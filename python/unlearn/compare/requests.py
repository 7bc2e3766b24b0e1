"""A forget request drawn from a training split: random samples, given
indices, or every sample of a class, and the rest to keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .._core import Split, check_seed


@dataclass
class Request:
    """Which training samples (or classes) to forget, and the rest."""

    forget: Split
    retain: Split
    indices: torch.Tensor
    forget_classes: Optional[list[int]] = None

    @property
    def kind(self) -> str:
        return "class" if self.forget_classes is not None else "instance"


def draw_request(
    train: Split,
    *,
    forget_samples: Optional[int] = None,
    forget_indices: Optional[Sequence[int]] = None,
    forget_class: Optional[int] = None,
    seed: int = 0,
) -> Request:
    """A request on `train`: `forget_samples` random samples (drawn from
    `seed`), the given `forget_indices`, or every sample of `forget_class`
    (the classes being 0 up to the largest label)."""
    seed = check_seed(seed)
    given = [v is not None for v in (forget_samples, forget_indices, forget_class)]
    if sum(given) != 1:
        raise ValueError("give exactly one of forget_samples, forget_indices and forget_class")
    n, classes = len(train), None
    if forget_indices is not None:
        idx = torch.as_tensor(list(forget_indices), dtype=torch.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad) or len(idx) == 0:
            raise ValueError(f"forget_indices must lie in 0..{n - 1}, got {bad.tolist() or 'none'}")
        idx = idx.unique()
    elif forget_class is not None:
        count = int(train.labels.max()) + 1
        if not 0 <= forget_class < count:
            raise ValueError(f"forget_class must be in 0..{count - 1}, got {forget_class}")
        idx, classes = torch.nonzero(train.labels == forget_class)[:, 0], [forget_class]
    else:
        if not 1 <= forget_samples < n:
            raise ValueError(f"forget_samples must be in 1..{n - 1}, got {forget_samples}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:forget_samples].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[idx] = False
    return Request(
        Split(train.inputs[idx], train.labels[idx]), Split(train.inputs[keep], train.labels[keep]), idx, classes
    )
