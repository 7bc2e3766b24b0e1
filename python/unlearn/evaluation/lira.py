"""A per-example likelihood-ratio membership attack against unlearning, after
U-LiRA (Hayes et al., "Inexact unlearning needs more careful evaluations to
avoid a false sense of privacy", SaTML 2025), itself the unlearning form of
LiRA (Carlini et al., "Membership inference attacks from first principles",
S&P 2022).

Unlike a population attack, which applies one decision rule to every
example, it fits, for each forget example, one Gaussian to the example's
logit-scaled confidence under unlearned models and one under retrained
models, and scores a model's output on that example by the likelihood ratio
of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .._core import Data, Range, check_option
from .confidences import check_confidences, check_sides, forget_confidences

REPORTED_FPRS = (0.01, 0.001)
_MIN_STD = 1e-6  # floor of a fitted standard deviation: a side of identical outputs has none
_PAIRS_PER_CHUNK = 1 << 22  # bounds the memory of the per-example AUCs


@dataclass
class LiraResult:
    """What the attack found (each figure is computed within each fold of
    attacked models, then averaged over the folds; see `lira_attack`).

    auc: area under the ROC curve of the attacked (model, forget example)
        pairs, unlearned models' outputs as members, retrained models' as
        non-members.
    tpr_at_fpr: {FPR level: the largest true positive rate at a false
        positive rate of at most that level}, for 1%, 0.1% and any level asked.
    example_auc: (examples,) the AUC of each forget example alone: how
        recognisable its unlearned outputs are (0.5: not at all).
    member_scores, nonmember_scores: (models, examples) float64, the log
        likelihood ratio of each unlearned and each retrained model's output,
        from the fits of the folds it was not in (larger: more like an
        unlearned model).
    unlearned_confidences, retrained_confidences: (models, examples) float64.
    labels: (examples,) the forget labels in the order read (None when the
        confidences were given directly).
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    example_auc: torch.Tensor
    member_scores: torch.Tensor
    nonmember_scores: torch.Tensor
    unlearned_confidences: torch.Tensor
    retrained_confidences: torch.Tensor
    labels: Optional[torch.Tensor]

    @property
    def tpr_at_1pct_fpr(self) -> float:
        return self.tpr_at_fpr[0.01]

    @property
    def tpr_at_01pct_fpr(self) -> float:
        return self.tpr_at_fpr[0.001]


def lira_attack(
    unlearned: Sequence[nn.Module],
    retrained: Sequence[nn.Module],
    forget: Data,
    *,
    folds: int = 2,
    fpr_levels: Sequence[float] = REPORTED_FPRS,
    fix_variance: bool = False,
) -> LiraResult:
    """Can an unlearned model's output on a forget example be told from a
    retrained model's? A per-example likelihood-ratio test (U-LiRA).

    `unlearned` holds N models from independent runs of an unlearning method
    (each trained on the forget data, then made to forget it), `retrained` N
    models retrained without it; `forget` is an (inputs, labels) pair, a
    Split or a DataLoader on the models' device. Every model scores every
    forget example by the logit-scaled confidence of its label (as
    `forget_quality` does; eval mode, no gradients, modes restored).

    Protocol. The game, per forget example x: a model is drawn either from
    the unlearned ones (x is a member: trained on, then unlearned) or from the
    retrained ones (x is a non-member: never trained on); the attacker sees
    the model's confidence c on x and guesses which. Its knowledge is other
    models of both kinds: for each x it fits a Gaussian to x's confidences
    under those unlearned models and one under those retrained models, and
    scores log N(c; unlearned fit) - log N(c; retrained fit) (larger: more
    likely unlearned).

    The models are split into `folds` folds (model i of each side in fold
    i mod folds). In turn, each fold's models are attacked with Gaussians
    fitted on all the other folds, so no attacked model is in a fit; the AUC
    and the TPR at each FPR level are computed on one fold's members (its
    unlearned models' scores on every forget example) against its
    non-members (its retrained models'), then averaged over the folds, and
    so is each example's AUC. Comparing scores across folds would not be
    sound: a model attacked in one fold is in the fit that scores the other
    fold's models. A perfect method, whose unlearned models are distributed
    as retrained ones, has AUC 0.5 and a TPR of about each FPR level.
    `folds=2` (default) fits on half the models and leaves (N/2) x examples
    non-members per fold, enough to resolve an FPR of 0.1% from 32 models and
    63 examples; more folds fit on more models but resolve less per fold (a
    fold with fewer than 1 / level non-members reports the TPR at no false
    positive at all).

    `fix_variance` uses one standard deviation per side and fold (the median
    over the forget examples) instead of a per-example one, as LiRA offers
    for few models; standard deviations are floored at 1e-6. Nothing is
    sampled: the result is a function of the models' outputs and their order.
    """
    levels = _check_arguments(fpr_levels, fix_variance)
    unlearned, retrained = check_sides(unlearned, retrained)
    _check_folds(folds, len(unlearned))
    confidences = forget_confidences(unlearned, retrained, forget)
    result = _attack(confidences.unlearned, confidences.retrained, folds, levels, fix_variance)
    result.labels = confidences.labels
    return result


def lira_from_confidences(
    unlearned_confidences: torch.Tensor,
    retrained_confidences: torch.Tensor,
    *,
    folds: int = 2,
    fpr_levels: Sequence[float] = REPORTED_FPRS,
    fix_variance: bool = False,
) -> LiraResult:
    """`lira_attack` from precomputed logit-scaled confidences, two (models,
    examples) tensors of the same shape (e.g. `forget_confidences(...)`'s)."""
    unlearned, retrained = check_confidences(unlearned_confidences, retrained_confidences)
    levels = _check_arguments(fpr_levels, fix_variance)
    _check_folds(folds, unlearned.shape[0])
    return _attack(unlearned, retrained, folds, levels, fix_variance)


def _check_arguments(fpr_levels: Sequence[float], fix_variance: bool) -> list[float]:
    check_option("fix_variance", fix_variance, bool)
    if isinstance(fpr_levels, torch.Tensor):
        fpr_levels = fpr_levels.tolist()
    if not isinstance(fpr_levels, (list, tuple, np.ndarray)):
        raise TypeError(f"fpr_levels must be a sequence of numbers in (0, 1), got {type(fpr_levels).__name__}")
    for level in fpr_levels:
        check_option("fpr_levels", level, Annotated[float, Range(0, 1, low_open=True, high_open=True)])
    return sorted({float(level) for level in (*REPORTED_FPRS, *fpr_levels)})


def _check_folds(folds: int, models: int) -> None:
    check_option("folds", folds, Annotated[int, Range(2)])
    fitted = models - -(-models // folds)  # the models left to fit when the largest fold is attacked
    if folds > models or fitted < 2:
        raise ValueError(
            f"folds: {folds} folds of {models} models per side leave {fitted} to fit a fold's Gaussians; "
            "at least 2 are needed (give more models or fewer folds)"
        )


def _attack(
    unlearned: torch.Tensor, retrained: torch.Tensor, folds: int, levels: list[float], fix_variance: bool
) -> LiraResult:
    u, r = unlearned.numpy(), retrained.numpy()
    fold = np.arange(u.shape[0]) % folds
    members, nonmembers = np.empty_like(u), np.empty_like(r)
    aucs, tprs, example_aucs = [], [], []
    for f in range(folds):
        attacked, fitted = fold == f, fold != f
        u_mean, u_std = u[fitted].mean(0), u[fitted].std(0)
        r_mean, r_std = r[fitted].mean(0), r[fitted].std(0)
        if fix_variance:
            u_std, r_std = np.median(u_std), np.median(r_std)
        members[attacked] = _log_normal(u[attacked], u_mean, u_std) - _log_normal(u[attacked], r_mean, r_std)
        nonmembers[attacked] = _log_normal(r[attacked], u_mean, u_std) - _log_normal(r[attacked], r_mean, r_std)
        positives, negatives = members[attacked].reshape(-1), nonmembers[attacked].reshape(-1)
        aucs.append(_auc(positives, negatives))
        tprs.append([_tpr_at_fpr(positives, negatives, level) for level in levels])
        example_aucs.append(_example_auc(members[attacked], nonmembers[attacked]))
    tpr = np.mean(tprs, axis=0)
    return LiraResult(
        auc=float(np.mean(aucs)),
        tpr_at_fpr={level: float(t) for level, t in zip(levels, tpr)},
        example_auc=torch.from_numpy(np.mean(example_aucs, axis=0)),
        member_scores=torch.from_numpy(members),
        nonmember_scores=torch.from_numpy(nonmembers),
        unlearned_confidences=unlearned,
        retrained_confidences=retrained,
        labels=None,
    )


def _log_normal(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Gaussian log density up to the constant -log(2 pi) / 2, which cancels in the ratio."""
    std = np.maximum(std, _MIN_STD)
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std)


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive > negative) + P(tie) / 2, from average ranks."""
    _, inverse, counts = np.unique(np.concatenate([positives, negatives]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based, ties averaged
    p, q = positives.size, negatives.size
    return float((ranks[:p].sum() - p * (p + 1) / 2) / (p * q))


def _tpr_at_fpr(positives: np.ndarray, negatives: np.ndarray, level: float) -> float:
    """The largest TPR over the rules "member if score >= t" whose FPR is at most `level`."""
    thresholds = np.unique(np.concatenate([positives, negatives]))
    true_positives = positives.size - np.searchsorted(np.sort(positives), thresholds, side="left")
    false_positives = negatives.size - np.searchsorted(np.sort(negatives), thresholds, side="left")
    allowed = false_positives / negatives.size <= level
    return float(true_positives[allowed].max() / positives.size) if allowed.any() else 0.0


def _example_auc(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """Each column's AUC, by comparing every member score with every non-member score."""
    n, examples = members.shape
    out = np.empty(examples)
    step = max(1, _PAIRS_PER_CHUNK // (n * n))
    for start in range(0, examples, step):
        m = members[:, None, start : start + step]
        o = nonmembers[None, :, start : start + step]
        out[start : start + step] = ((m > o).sum((0, 1)) + 0.5 * (m == o).sum((0, 1))) / (n * n)
    return out
