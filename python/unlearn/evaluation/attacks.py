"""Membership-inference attacks, each named after the paper whose protocol it
follows (the papers disagree on features, data and what they report).

Every attack fits a scikit-learn classifier on one scalar per sample, so
scikit-learn is needed here (the optional extra `torch-unlearn[data]`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def sklearn_missing() -> bool:
    """True when scikit-learn cannot be imported (the attacks are then skipped)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return True
    return False


def _balance(members: torch.Tensor, nonmembers: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Subsamples the larger of the two sets (seeded) to the size of the smaller."""
    generator = torch.Generator().manual_seed(seed)
    size = min(len(members), len(nonmembers))

    def take(values: torch.Tensor) -> torch.Tensor:
        return values[torch.randperm(len(values), generator=generator)[:size]] if len(values) > size else values

    return take(members), take(nonmembers)


def _features_and_targets(members: torch.Tensor, nonmembers: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    features = torch.cat([members, nonmembers]).double().cpu().numpy().reshape(-1, 1)
    targets = np.concatenate([np.ones(len(members), dtype=np.int64), np.zeros(len(nonmembers), dtype=np.int64)])
    return features, targets


def mia_loss_logreg(forget_loss: torch.Tensor, test_loss: torch.Tensor, seed: int = 0) -> float:
    """NeurIPS 2023 unlearning challenge: logistic regression on the per-sample
    loss, forget (member) vs test (non-member), balanced by subsampling; the
    mean accuracy of a 10-fold stratified cross-validation (fewer folds when
    there are fewer than 10 forget samples; NaN with a warning below 2).
    0.5 means the attacker cannot tell forget samples from unseen ones."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    members, nonmembers = _balance(forget_loss, test_loss, seed)
    folds = min(10, len(members))
    if folds < 2:
        warnings.warn(
            "mia_loss_logreg needs at least 2 forget and 2 test samples for cross-validation: NaN", stacklevel=3
        )
        return float("nan")
    features, targets = _features_and_targets(members, nonmembers)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    return float(cross_val_score(LogisticRegression(), features, targets, cv=cv, scoring="accuracy").mean())


def mia_entropy_logreg(retain_entropy: torch.Tensor, test_entropy: torch.Tensor, forget_entropy: torch.Tensor) -> float:
    """SSD (Foster et al.): logistic regression (balanced class weights) on the
    softmax entropy, retain = member vs test = non-member; the mean predicted
    membership of the forget samples (lower = more forgotten)."""
    from sklearn.linear_model import LogisticRegression

    features, targets = _features_and_targets(retain_entropy, test_entropy)
    attack = LogisticRegression(class_weight="balanced").fit(features, targets)
    return float(attack.predict(forget_entropy.double().cpu().numpy().reshape(-1, 1)).mean())


def mia_confidence_svc(
    retain_confidence: torch.Tensor, test_confidence: torch.Tensor, forget_confidence: torch.Tensor, seed: int = 0
) -> float:
    """SalUn / Kodge et al.: RBF SVC (C = 3, gamma = "auto") on the softmax
    confidence of the true class, retain = member vs test = non-member,
    balanced by subsampling; the fraction of forget samples predicted
    non-member (higher = more forgotten)."""
    from sklearn.svm import SVC

    members, nonmembers = _balance(retain_confidence, test_confidence, seed)
    features, targets = _features_and_targets(members, nonmembers)
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(features, targets)
    return float(1.0 - attack.predict(forget_confidence.double().cpu().numpy().reshape(-1, 1)).mean())
