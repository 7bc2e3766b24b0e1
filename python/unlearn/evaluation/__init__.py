"""How well did forgetting work: accuracies, membership-inference attacks,
gradient norms, and distances to a reference (retrained) model.

Every attack is named after the protocol it reproduces (`attacks.py` says
which paper's).
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import torch
from torch import nn

from .._core import (
    Data,
    NonNegative,
    Samples,
    as_split,
    check_fits,
    check_model,
    check_option,
    check_seed,
    eval_mode,
    first_inputs,
    model_device,
    output_classes,
    seeded_rng,
    validate_classes,
)
from . import attacks as _attacks  # the `attacks` argument of evaluate() shadows the module name
from . import metrics
from .confidences import Confidences, forget_confidences, logit_confidence, model_confidences
from .lira import LiraResult, lira_attack, lira_from_confidences
from .quality import ForgetQuality, accuracy_ratio, final_score, forget_quality, forget_quality_from_confidences

__all__ = [
    "Confidences",
    "ForgetQuality",
    "LiraResult",
    "accuracy_ratio",
    "evaluate",
    "final_score",
    "forget_confidences",
    "forget_quality",
    "forget_quality_from_confidences",
    "lira_attack",
    "lira_from_confidences",
    "logit_confidence",
    "model_confidences",
]


def _checked_splits(model: nn.Module, reference: Optional[nn.Module], **data: Data) -> dict[str, Samples]:
    """Validated forget/retain/test samples that `model` (and `reference`) can score."""
    splits = {}
    for name, value in data.items():
        if value is None:
            raise ValueError(f"{name} is required: give the {name} data as a Split, DataLoader or (inputs, labels)")
        splits[name] = as_split(value, name, model)
    classes = output_classes(model, first_inputs(splits["test"]), "test")
    for name, split in splits.items():
        check_fits(split, name, model, classes)
    if reference is not None:
        metrics.parameter_distance(model, reference)  # raises when the architectures differ
        if output_classes(reference, first_inputs(splits["forget"]), "forget") != classes:
            raise ValueError(f"reference must have as many outputs as model ({classes})")
    return splits


def evaluate(
    model: nn.Module,
    *,
    forget: Data,
    retain: Data,
    test: Data,
    reference: Optional[nn.Module] = None,
    l2: float = 0.0,
    attacks: bool = True,
    seed: int = 0,
    forget_classes: Optional[Sequence[int]] = None,
) -> dict[str, float]:
    """Scores `model` after an unlearning request, in eval mode (the modes of
    its modules are restored afterwards).

    `forget`, `retain` and `test` are Splits, DataLoaders, Datasets or
    (inputs, labels) pairs on the model's device; DataLoaders and Datasets
    are read batch by batch (torch's RNG seeded with `seed` for the call, so
    a shuffling or augmenting loader gives the same scores for the same
    seed). Keys: acc_retain, acc_forget, acc_test;
    mia_loss_logreg, mia_entropy_logreg, mia_confidence_svc (unless
    `attacks=False`, or scikit-learn is missing: then a warning);
    grad_residual (norm of the gradient of the mean retain loss plus
    l2/2 ||w||^2) and grad_norm_forget (of the mean forget loss); with a
    `reference` model also js_divergence, activation_distance (both on the
    forget data) and param_distance; with `forget_classes` (a class
    request) also acc_test_retain and acc_test_forget, the test accuracy on
    the other classes and on the forgotten ones.
    """
    _check_arguments(model, reference, l2, attacks, seed)
    with eval_mode(model), eval_mode(reference), seeded_rng(seed, model_device(model)):
        splits = _checked_splits(model, reference, forget=forget, retain=retain, test=test)
        out = {name: metrics.outputs(model, splits[name])[0] for name in ("retain", "test")}
        out["forget"], *theirs = metrics.outputs(model, splits["forget"], reference)
        scores = {f"acc_{name}": out[name].accuracy for name in ("retain", "forget", "test")}
        if forget_classes is not None:
            scores.update(_class_accuracies(out["test"], forget_classes))
        if attacks:
            scores.update(_attack_scores(out, seed))
        scores["grad_residual"] = metrics.gradient_norm(model, splits["retain"], float(l2))
        scores["grad_norm_forget"] = metrics.gradient_norm(model, splits["forget"])
        if reference is not None:
            scores.update(_reference_scores(model, reference, out["forget"], theirs[0]))
    return scores


def _check_arguments(model: nn.Module, reference: Optional[nn.Module], l2: float, attacks: bool, seed: int) -> None:
    check_model(model)
    if reference is not None:
        check_model(reference, "reference")
    check_option("l2", l2, NonNegative)
    check_option("attacks", attacks, bool)
    check_seed(seed)
    if reference is not None and model_device(reference) != model_device(model):
        raise ValueError(f"reference is on {model_device(reference)} but the model is on {model_device(model)}")


def _class_accuracies(test: metrics.Outputs, forget_classes: Sequence[int]) -> dict[str, float]:
    """Test accuracy on the classes kept and on the classes forgotten."""
    classes = validate_classes(forget_classes, test.log_probs.shape[1])
    gone = torch.isin(test.labels, torch.tensor(classes, device=test.labels.device))
    if not bool(gone.any()):
        raise ValueError(f"forget_classes: the test data has no samples of classes {classes}")
    return {"acc_test_retain": test.subset(~gone).accuracy, "acc_test_forget": test.subset(gone).accuracy}


def _attack_scores(out: dict[str, metrics.Outputs], seed: int) -> dict[str, float]:
    """The membership-inference attacks (none, with a warning, without scikit-learn)."""
    if _attacks.sklearn_missing():
        warnings.warn(
            "membership-inference attacks skipped: scikit-learn is not installed (pip install 'torch-unlearn[data]')",
            stacklevel=3,
        )
        return {}
    forget, retain, test = out["forget"], out["retain"], out["test"]
    return {
        "mia_loss_logreg": _attacks.mia_loss_logreg(forget.loss, test.loss, seed),
        "mia_entropy_logreg": _attacks.mia_entropy_logreg(retain.entropy, test.entropy, forget.entropy),
        "mia_confidence_svc": _attacks.mia_confidence_svc(retain.confidence, test.confidence, forget.confidence, seed),
    }


def _reference_scores(
    model: nn.Module, reference: nn.Module, ours: metrics.Outputs, theirs: metrics.Outputs
) -> dict[str, float]:
    """How far the model's outputs (on the forget data) and weights are from the reference's."""
    return {
        "js_divergence": metrics.js_divergence(ours, theirs),
        "activation_distance": metrics.activation_distance(ours, theirs),
        "param_distance": metrics.parameter_distance(model, reference),
    }
