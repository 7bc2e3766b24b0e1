"""The reference every unlearning method is measured against: a model of the
same architecture trained from scratch on the retained data alone, with the
recipe of `unlearn.train()`."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from .. import training
from .._core import NonNegative, Positive, PositiveInt, Samples
from .registry import register


@register(
    "retrain",
    "train from scratch on the retained data (the reference)",
    scope="any",
    needs=("retain",),
    controls=("epochs", "lr"),
)
def retrain(
    model: nn.Module,
    *,
    forget: Optional[Samples],
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    epochs: Optional[PositiveInt] = None,
    lr: Optional[Positive] = None,
    weight_decay: Optional[NonNegative] = None,
    batch_size: Optional[PositiveInt] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Reinitialises `model` in place (seeded) and fits it on `retain` (for a
    class request, without the forget classes' samples); options left as
    None take `training.TRAINING_DEFAULTS`.

    Options:
        epochs: passes over the retained data (None: the training default)
        lr: initial SGD learning rate, decayed by a cosine (None: the training default)
        weight_decay: SGD weight decay (None: the training default)
        batch_size: samples per step (None: the training default)
        progress: show a progress bar
    """
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
