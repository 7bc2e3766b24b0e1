"""The reference every unlearning method is measured against: a model of the
same architecture trained from scratch on the retained data alone, with the
recipe of `unlearn.train()`."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from .. import training  # module import: training imports this package in turn
from .base import Split, register


@register("retrain", "train from scratch on the retained data (the reference)", scope="any")
def retrain(
    model: nn.Module,
    *,
    forget: Optional[Split],
    retain: Optional[Split],
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: Optional[int] = None,
    lr: Optional[float] = None,
    weight_decay: Optional[float] = None,
    batch_size: Optional[int] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Reinitialises `model` in place (seeded) and fits it on `retain`; options
    left as None take `training.TRAINING_DEFAULTS`. `forget` and
    `forget_classes` are not used: the retained data already excludes them."""
    if retain is None:
        raise ValueError("retain: retraining needs the retained data (retain=...)")
    settings = {
        "epochs": training.TRAINING_DEFAULTS["epochs"] if epochs is None else epochs,
        "lr": training.TRAINING_DEFAULTS["lr"] if lr is None else lr,
        "weight_decay": training.TRAINING_DEFAULTS["weight_decay"] if weight_decay is None else weight_decay,
        "batch_size": training.TRAINING_DEFAULTS["batch_size"] if batch_size is None else batch_size,
    }
    training.reinitialize(model, seed)
    losses = training.fit(model, retain, seed=seed, progress=progress, **settings)
    model.eval()
    return {**settings, "samples": len(retain), "final_loss": losses[-1]}
