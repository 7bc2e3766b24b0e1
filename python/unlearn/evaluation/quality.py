"""Forget quality F of the NeurIPS 2023 Machine Unlearning Challenge, and the
challenge's final score.

The challenge (Triantafillou et al., "Are we making progress in unlearning?",
2024; evaluation code released as google-deepmind/unlearning_evaluation,
`metric.py` and `main.py`) runs an unlearning method N times and retrains N
models without the forget data. For each forget example it compares the
logit-scaled confidence of the true class across the N unlearned models with
that across the N retrained ones:

1. the side whose median confidence is larger is the "positive" side;
2. two families of decision rules try to tell the sides apart: one threshold
   (predict positive at or above it) and a window of two thresholds (predict
   the side with the narrower spread inside it); each rule's empirical false
   positive rate (FPR) and false negative rate (FNR) give an epsilon
   max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)), at least 0:
   a lower bound on the epsilon of any (epsilon, delta) guarantee that the two
   sides are indistinguishable;
3. the example's epsilon is the largest over the rules (see `_epsilon` for
   the rules that are left out and for the caps);
4. the example earns 1 point for epsilon in [0, 0.5), 1/2 in [0.5, 1), 1/4 in
   [1, 1.5), ..., halving per bucket up to ceil(log(N - 1)), 0 beyond; F is
   the mean over the forget examples.

With N models per side, empirical rates are multiples of 1/N and the
strongest of about 160,000 rules is kept, so even two identical distributions
give epsilons of about 0.7 to 2.8 (median about log 5, worth 1/8 of a point)
and F well below 1 (about 0.18 for N = 32 or 64): F compares methods
evaluated with the same N, it is not an absolute probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .._core import Data, NonNegative, Range, check_option
from .confidences import check_confidences, forget_confidences

# The constants of the released metric.
EPSILON_CAP = 50.0  # the epsilon of a rule that separates the sides perfectly, and of a very peaky side
THRESHOLDS_PER_UNIT = 100  # grid density, per unit of logit-scaled confidence
_WINDOW_BUFFER = 2.0  # how far the two-threshold windows reach beyond the narrower side
_PEAKY_RATIO = 0.01  # a side whose spread is under 1% of the other's gets EPSILON_CAP outright
_BUCKET = 0.5

Delta = Annotated[float, Range(0, 1, high_open=True)]


@dataclass
class ForgetQuality:
    """The forget quality of one set of unlearned models against retrained ones.

    score: F in [0, 1], the mean of `points`.
    epsilons: (examples,) float64, each example's estimated epsilon in [0, EPSILON_CAP].
    points: (examples,) float64, each example's bucketed score.
    unlearned_confidences, retrained_confidences: (models, examples) float64,
        the logit-scaled confidences the epsilons were estimated from (e.g. to
        plot one example's two histograms).
    labels: (examples,) the forget labels in the order read (None when the
        confidences were given directly).
    delta: the delta the epsilons hold at.
    """

    score: float
    epsilons: torch.Tensor
    points: torch.Tensor
    unlearned_confidences: torch.Tensor
    retrained_confidences: torch.Tensor
    labels: Optional[torch.Tensor]
    delta: float


def forget_quality(
    unlearned: Sequence[nn.Module], retrained: Sequence[nn.Module], forget: Data, delta: float = 1e-5
) -> ForgetQuality:
    """Forget quality F of the NeurIPS 2023 Machine Unlearning Challenge.

    `unlearned` holds N >= 2 models from independent runs of an unlearning
    method, `retrained` N models retrained without the forget data (same
    architecture, fresh seeds); `forget` is the forget data as an
    (inputs, labels) pair, a Split or a DataLoader on the models' device (a
    DataLoader is read once, batch by batch). Each model scores each forget
    example by the logit-scaled confidence log(p / (1 - p)) of its label, in
    eval mode and without gradients (modes are restored afterwards). Returns
    a `ForgetQuality`; the module docstring gives the definition. F needs
    many models to mean much: the challenge used N = 512, and with N = 2
    there are no score buckets at all (F = 0).
    """
    check_option("delta", delta, Delta)
    confidences = forget_confidences(unlearned, retrained, forget)
    result = forget_quality_from_confidences(confidences.unlearned, confidences.retrained, delta)
    result.labels = confidences.labels
    return result


def forget_quality_from_confidences(
    unlearned_confidences: torch.Tensor, retrained_confidences: torch.Tensor, delta: float = 1e-5
) -> ForgetQuality:
    """F from precomputed logit-scaled confidences, two (models, examples)
    tensors of the same shape (e.g. `forget_confidences(...)`'s)."""
    unlearned, retrained = check_confidences(unlearned_confidences, retrained_confidences)
    check_option("delta", delta, Delta)
    u, r = unlearned.numpy(), retrained.numpy()
    models = u.shape[0]
    # The side with the larger median (over models) is the positive one, per example.
    retrained_positive = np.median(r, axis=0) > np.median(u, axis=0)
    positive = np.where(retrained_positive, r, u)
    negative = np.where(retrained_positive, u, r)
    table = _epsilon_table(models, float(delta))
    epsilons = np.array([_epsilon(positive[:, j], negative[:, j], table) for j in range(u.shape[1])])
    points = _points(epsilons, models)
    return ForgetQuality(
        score=float(points.mean()),
        epsilons=torch.from_numpy(epsilons),
        points=torch.from_numpy(points),
        unlearned_confidences=unlearned,
        retrained_confidences=retrained,
        labels=None,
        delta=float(delta),
    )


def _epsilon_table(models: int, delta: float) -> np.ndarray:
    """The epsilon of a rule with k false positives and l false negatives out
    of `models` per side, at [k, l]; NaN where the rule is left out.

    As in the released metric: a rule with no errors at all separates the
    sides perfectly (infinite epsilon, capped later); a rule with exactly one
    error rate at zero is left out, since a zero estimated from N models says
    more about too few samples than about the distributions; otherwise the
    larger of the two one-sided bounds, at least 0 (a bound whose log has a
    negative argument, when a rate exceeds 1 - delta, is ignored; NaN if both are).
    """
    rate = np.arange(models + 1, dtype=np.float64) / models
    fpr, fnr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.log(1 - delta - fpr) - np.log(fnr)
        second = np.log(1 - delta - fnr) - np.log(fpr)
    table = np.clip(np.fmax(first, second), 0, None)  # fmax skips a NaN bound; NaN stays NaN
    table[0, 1:] = np.nan
    table[1:, 0] = np.nan
    table[0, 0] = np.inf
    return table


def _epsilon(positive: np.ndarray, negative: np.ndarray, table: np.ndarray) -> float:
    """One example's epsilon from its confidences on the positive and negative side."""
    positive_spread = positive.max() - positive.min()
    negative_spread = negative.max() - negative.min()
    largest, smallest = max(positive_spread, negative_spread), min(positive_spread, negative_spread)
    if largest > 0 and smallest / largest < _PEAKY_RATIO:
        # One side is far peakier than the other: the released metric gives
        # the cap outright, as its threshold grid may be too coarse to see it.
        return EPSILON_CAP
    # Epsilon depends on a rule only through its error counts: mark the
    # (false positives, false negatives) pairs some rule reaches.
    reached = np.zeros(table.size, dtype=bool)
    for false_positives, false_negatives in (_window_errors(positive, negative), _threshold_errors(positive, negative)):
        reached[false_positives * table.shape[1] + false_negatives] = True
    epsilons = table.reshape(-1)[reached]
    kept = epsilons[~np.isnan(epsilons)]
    # The released code asserts here that some rule survived, with
    # `assert thr_eps` on a NumPy array, which raises as soon as more than
    # one survives (and also when exactly one survives with epsilon 0); what
    # it means is "at least one rule is left". None is left only when every
    # rule on the grid classifies both sides alike, or has one error rate at
    # zero: identical point masses, or two sides that differ by less than
    # the grid resolution (1 / THRESHOLDS_PER_UNIT). Rather than abort the
    # whole evaluation, such an example gets epsilon 0: at the metric's
    # resolution, no rule tells its two sides apart.
    if kept.size == 0:
        return 0.0
    return float(min(kept.max(), EPSILON_CAP))


def _counts_at_or_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def _counts_within(sorted_values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    inside = np.searchsorted(sorted_values, high, side="right") - np.searchsorted(sorted_values, low, side="left")
    return np.maximum(inside, 0)  # a window with low > high is empty


def _threshold_errors(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of the one-threshold rules: predict
    positive at or above each of a grid of thresholds spanning both sides."""
    low, high = min(positive.min(), negative.min()), max(positive.max(), negative.max())
    count = math.ceil((high - low) * THRESHOLDS_PER_UNIT)
    # The released grid is single precision (torch.linspace with tensor ends
    # returns the default dtype); kept so that scores match it exactly.
    grid = torch.linspace(torch.tensor(low), torch.tensor(high), count, dtype=torch.float32).double().numpy()
    positives = _counts_at_or_above(np.sort(positive), grid)
    false_positives = _counts_at_or_above(np.sort(negative), grid)
    return false_positives, positive.size - positives


def _window_errors(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of the two-threshold rules: predict
    the narrower side (the one with the smaller spread; the negative one on a
    tie) for confidences inside a window [left, right]. Right ends run from
    the narrower side's minimum plus its spread minus 2 to its maximum plus 2
    on a grid of 100 per unit; for each, 400 left ends run from right - spread
    - 2 to right - spread + 2."""
    if positive.max() - positive.min() >= negative.max() - negative.min():
        narrow, wide = negative, positive
    else:
        narrow, wide = positive, negative
    width = narrow.max() - narrow.min()
    first, last = narrow.min() + width - _WINDOW_BUFFER, narrow.max() + _WINDOW_BUFFER
    right = np.linspace(first, last, num=math.ceil((last - first) * THRESHOLDS_PER_UNIT))
    lefts = math.ceil(2 * _WINDOW_BUFFER * THRESHOLDS_PER_UNIT)
    left = np.linspace(right - width - _WINDOW_BUFFER, right - width + _WINDOW_BUFFER, num=lefts, axis=1).reshape(-1)
    right = np.repeat(right, lefts)
    hits = _counts_within(np.sort(narrow), left, right)
    false_positives = _counts_within(np.sort(wide), left, right)
    return false_positives, narrow.size - hits


def _points(epsilons: np.ndarray, models: int) -> np.ndarray:
    """The bucketed score of each epsilon: 1 in [0, 0.5), then halving per
    half unit, over the buckets that end at or below ceil(log(models - 1)),
    the largest epsilon that `models` samples per side can estimate; 0 beyond."""
    largest = math.ceil(math.log(models - 1))
    buckets = int(largest / _BUCKET)
    index = np.floor(epsilons / _BUCKET)
    return np.where(index < buckets, 0.5 ** np.minimum(index, buckets), 0.0)


def accuracy_ratio(unlearned: Union[float, Sequence[float]], retrained: Union[float, Sequence[float]]) -> float:
    """Mean accuracy of the unlearned models over mean accuracy of the
    retrained ones (each a number in [0, 1] or a sequence of per-model ones),
    as the challenge divides them."""
    means = []
    for name, value in (("unlearned", unlearned), ("retrained", retrained)):
        values = _accuracies(value, name)
        means.append(sum(values) / len(values))
    if means[1] == 0:
        raise ValueError("retrained: the mean accuracy is 0, the ratio is undefined")
    return means[0] / means[1]


def _accuracies(value: Any, name: str) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not values:
        raise ValueError(f"{name} is empty: give at least one accuracy")
    for v in values:
        check_option(name, v, Annotated[float, Range(0, 1)])
    return [float(v) for v in values]


def final_score(
    forget_score: Union[float, ForgetQuality], retain_accuracy_ratio: float, test_accuracy_ratio: float
) -> float:
    """The challenge's final score: F x (retain accuracy ratio) x (test accuracy ratio).

    Each ratio is the unlearned models' mean accuracy over the retrained
    models' (`accuracy_ratio`), on the retain and on the test data. As in the
    released code, nothing is capped: a method more accurate than retraining
    has a ratio above 1 and can score above F.
    """
    if isinstance(forget_score, ForgetQuality):
        forget_score = forget_score.score
    check_option("forget_score", forget_score, Annotated[float, Range(0, 1)])
    check_option("retain_accuracy_ratio", retain_accuracy_ratio, NonNegative)
    check_option("test_accuracy_ratio", test_accuracy_ratio, NonNegative)
    return float(forget_score) * float(retain_accuracy_ratio) * float(test_accuracy_ratio)
