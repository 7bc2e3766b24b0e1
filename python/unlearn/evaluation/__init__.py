"""How well did forgetting work: accuracies, membership-inference attacks,
gradient norms, and distances to a reference (retrained) model.

Conventions follow METHODS.md "Evaluation conventions"; every attack is named
after the protocol it reproduces.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional, Sequence

import torch

from torch import nn

from .._core import Data, Split, as_split, check_fits, eval_mode, model_device, output_classes, validate_classes
from . import attacks as _attacks  # the `attacks` argument of evaluate() shadows the module name
from . import metrics

__all__ = ["evaluate"]


def _checked_splits(model: nn.Module, reference: Optional[nn.Module], **data: Data) -> dict[str, Split]:
    """Validated forget/retain/test Splits that `model` (and `reference`) can score."""
    splits = {}
    for name, value in data.items():
        if value is None:
            raise ValueError(f"{name} is required: give the {name} data as a Split, DataLoader or (inputs, labels)")
        splits[name] = as_split(value, name, model)
    classes = output_classes(model, splits["test"].inputs, "test")
    for name, split in splits.items():
        check_fits(split, name, model, classes)
    if reference is not None:
        metrics.parameter_distance(model, reference)  # raises when the architectures differ
        if output_classes(reference, splits["forget"].inputs, "forget") != classes:
            raise ValueError(f"reference must have as many outputs as model ({classes})")
    return splits


def evaluate(
    model: nn.Module,
    *,
    forget: Data,
    retain: Data,
    test: Data,
    reference: Optional[nn.Module] = None,
    l2: float = 0.01,
    attacks: bool = True,
    seed: int = 0,
    forget_classes: Optional[Sequence[int]] = None,
) -> dict[str, float]:
    """Scores `model` after an unlearning request, in eval mode (the modes of
    its modules are restored afterwards).

    `forget`, `retain` and `test` are Splits, DataLoaders or (inputs, labels)
    pairs on the model's device. Keys: acc_retain, acc_forget, acc_test;
    mia_loss_logreg, mia_entropy_logreg, mia_confidence_svc (unless
    `attacks=False`, or scikit-learn is missing: then a warning);
    grad_residual (norm of the gradient of the mean retain loss plus
    l2/2 ||w||^2) and grad_norm_forget (of the mean forget loss); with a
    `reference` model also js_divergence, activation_distance (both on the
    forget data) and param_distance; with `forget_classes` (a class
    request) also acc_test_retain and acc_test_forget, the test accuracy on
    the other classes and on the forgotten ones.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if reference is not None and not isinstance(reference, nn.Module):
        raise TypeError(f"reference must be a torch.nn.Module or None, got {type(reference).__name__}")
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not math.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    if not isinstance(attacks, bool):
        raise TypeError(f"attacks must be a bool, got {type(attacks).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if reference is not None and model_device(reference) != model_device(model):
        raise ValueError(f"reference is on {model_device(reference)} but the model is on {model_device(model)}")

    with eval_mode(model), eval_mode(reference):
        splits = _checked_splits(model, reference, forget=forget, retain=retain, test=test)
        out = {name: metrics.outputs(model, split) for name, split in splits.items()}
        scores = {f"acc_{name}": out[name].accuracy for name in ("retain", "forget", "test")}
        if forget_classes is not None:
            classes = validate_classes(forget_classes, out["test"].log_probs.shape[1])
            gone = torch.isin(out["test"].labels, torch.tensor(classes, device=out["test"].labels.device))
            if not bool(gone.any()):
                raise ValueError(f"forget_classes: the test data has no samples of classes {classes}")
            scores["acc_test_retain"] = out["test"].subset(~gone).accuracy
            scores["acc_test_forget"] = out["test"].subset(gone).accuracy
        if attacks and _attacks.sklearn_missing():
            warnings.warn(
                "membership-inference attacks skipped: scikit-learn is not installed (pip install 'torch-unlearn[data]')",
                stacklevel=2,
            )
        elif attacks:
            scores["mia_loss_logreg"] = _attacks.mia_loss_logreg(out["forget"].loss, out["test"].loss, seed)
            scores["mia_entropy_logreg"] = _attacks.mia_entropy_logreg(
                out["retain"].entropy, out["test"].entropy, out["forget"].entropy
            )
            scores["mia_confidence_svc"] = _attacks.mia_confidence_svc(
                out["retain"].confidence, out["test"].confidence, out["forget"].confidence, seed
            )
        scores["grad_residual"] = metrics.gradient_norm(model, splits["retain"], float(l2))
        scores["grad_norm_forget"] = metrics.gradient_norm(model, splits["forget"])
        if reference is not None:
            theirs = metrics.outputs(reference, splits["forget"])
            scores["js_divergence"] = metrics.js_divergence(out["forget"], theirs)
            scores["activation_distance"] = metrics.activation_distance(out["forget"], theirs)
            scores["param_distance"] = metrics.parameter_distance(model, reference)
    return scores
