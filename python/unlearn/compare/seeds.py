"""One comparison over several seeds, summarised: each score as a mean and a
sample standard deviation over the seeds, and each column's forget quality F
(the NeurIPS 2023 Machine Unlearning Challenge's metric, `unlearn.evaluation`)
from its per-example forget confidences against those of the retrained
models, with the challenge's final score.

`summarise` works on the runs of `compare()` whatever varied between them:
the digits experiment trains the original model with each seed, a user's
comparison keeps the user's model and varies the methods' and the
retraining's seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import torch

from .._core import check_seed
from ..evaluation import accuracy_ratio, final_score, forget_quality_from_confidences

Seeds = Union[int, Sequence[int]]


def seed_list(seeds: Any, first: int = 0) -> list[int]:
    """`seeds` as a list: an int K >= 1 stands for first, ..., first + K - 1;
    a sequence gives distinct int64 seeds, at least one."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)) or isinstance(seeds, str):
        raise TypeError(f"seeds must be an int or a sequence of ints, got {type(seeds).__name__}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        return [check_seed(first + i, "seeds") for i in range(seeds)]
    checked = [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
    if not checked:
        raise ValueError("seeds is empty: give at least one seed")
    if len(set(checked)) != len(checked):
        raise ValueError(f"seeds must be distinct, got {checked}")
    return checked


def summary(values: list[float]) -> dict[str, Optional[float]]:
    """Mean and sample standard deviation; the deviation is None for one value,
    which has no spread to estimate (0.0 would claim one was measured)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def _column_values(runs: list[dict[str, Any]], column: str, key: str) -> list[float]:
    return [float(run["metrics"][column][key]) for run in runs]


def _stacked(runs: list[dict[str, Any]], column: str) -> torch.Tensor:
    """A column's forget confidences over the runs: (seeds, examples)."""
    return torch.stack([run["confidences"][column] for run in runs])


def _forget_quality(runs: list[dict[str, Any]], ceiling: torch.Tensor) -> dict[str, float]:
    """Each column's F against the retrained references of the same seeds; for
    "retrain" itself, against the second set of retrained models (`ceiling`)."""
    retrained = _stacked(runs, "retrain")
    return {
        column: forget_quality_from_confidences(
            _stacked(runs, column), ceiling if column == "retrain" else retrained
        ).score
        for column in runs[0]["confidences"]
    }


def _final_scores(runs: list[dict[str, Any]], quality: dict[str, float]) -> dict[str, float]:
    """The challenge's final score of each column: F times its mean retain and
    mean test accuracy over retraining's, over the seeds."""

    def ratio(column: str, key: str) -> float:
        return accuracy_ratio(_column_values(runs, column, key), _column_values(runs, "retrain", key))

    return {
        column: final_score(score, ratio(column, "acc_retain"), ratio(column, "acc_test"))
        for column, score in quality.items()
    }


def summarise(runs: list[dict[str, Any]], seeds: list[int], retrained: Callable[[int], torch.Tensor]) -> dict[str, Any]:
    """The summary of `runs`, one `compare()` result per seed of `seeds`.

    `retrained(seed)` gives the forget confidences of one more model retrained
    with `seed` the way each run retrained its reference; it is called once
    per seed of "reference_seeds" (K more retrainings) for retraining's own F,
    and not at all for one seed. Returns a JSON-serialisable dict:
    - "seeds": the seeds;
    - "metrics": {column: {metric: {"mean": ..., "std": ...}}} for the columns
      "original", "retrain" and each method, std being the sample standard
      deviation (None for a single seed);
    - "forget_quality": {column: F} with K >= 2: F of the column's K models
      against the K retrained references, from their logit-scaled forget
      confidences. Comparing "retrain" with itself would be degenerate, so its
      F is the ceiling: the K references against the K models retrained with
      "reference_seeds";
    - "final_score": {column: F x retain accuracy ratio x test accuracy ratio},
      the mean accuracies over the seeds divided by retraining's (1 for
      "retrain", whose score is its F);
    - "reference_seeds": the seeds of that second set, the K after the
      largest seed ([] for one seed);
    - "skipped": {method: why}, as in `compare()`.
    F and the final scores are {} for one seed. F compares K models per side:
    with K = 2 the metric has no score buckets and every F is 0, and a few
    seeds give a coarse F (the challenge used 512 models per side), so read
    it as a ranking next to retrain's ceiling rather than as a probability.
    """
    metrics = {
        column: {key: summary(_column_values(runs, column, key)) for key in scores}
        for column, scores in runs[0]["metrics"].items()
    }
    quality: dict[str, float] = {}
    reference_seeds: list[int] = []
    if len(seeds) > 1:
        reference_seeds = [max(seeds) + 1 + i for i in range(len(seeds))]
        quality = _forget_quality(runs, torch.stack([retrained(seed) for seed in reference_seeds]))
    return {
        "seeds": seeds,
        "metrics": metrics,
        "forget_quality": quality,
        "final_score": _final_scores(runs, quality),
        "reference_seeds": reference_seeds,
        "skipped": runs[0]["skipped"],
    }
