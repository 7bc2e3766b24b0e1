"""evaluate()'s membership-inference attacks: what they find, their seed, and
how they are skipped."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import unlearn
from tests.evaluation.helpers import BASE_KEYS
from unlearn import models, training
from unlearn._core import Split
from unlearn.evaluation import attacks


def test_loss_attack_finds_training_samples(digits):
    """A model that fitted the forget samples (and never saw the test set)
    leaks membership; an untrained model does not (about 0.5)."""
    train = digits.train
    forget, retain = Split(train.inputs[:100], train.labels[:100]), Split(train.inputs[100:], train.labels[100:])
    memorizer = models.build("mlp")
    training.fit(memorizer, forget, epochs=60, lr=0.1, weight_decay=0.0, batch_size=64, seed=0)
    trained = unlearn.evaluate(memorizer, forget=forget, retain=retain, test=digits.test)["mia_loss_logreg"]
    torch.manual_seed(0)
    untrained = unlearn.evaluate(models.build("mlp"), forget=forget, retain=retain, test=digits.test)["mia_loss_logreg"]
    assert abs(untrained - 0.5) < 0.15
    assert trained > 0.62 and trained > untrained + 0.1


def test_attacks_are_seeded(mlp, request_splits):
    first = unlearn.evaluate(mlp, seed=3, **request_splits)
    assert unlearn.evaluate(mlp, seed=3, **request_splits) == first


def test_attacks_are_skipped_with_a_warning_without_scikit_learn(mlp, request_splits, monkeypatch):
    monkeypatch.setattr(attacks, "sklearn_missing", lambda: True)
    with pytest.warns(UserWarning, match="scikit-learn is not installed"):
        scores = unlearn.evaluate(mlp, **request_splits)
    assert set(scores) == BASE_KEYS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unlearn.evaluate(mlp, attacks=False, **request_splits)


def test_a_single_forget_sample_gives_nan_loss_attack(mlp, request_splits):
    one = request_splits["forget"]
    with pytest.warns(UserWarning, match="at least 2"):
        scores = unlearn.evaluate(
            mlp, forget=(one.inputs[:1], one.labels[:1]), retain=request_splits["retain"], test=request_splits["test"]
        )
    assert math.isnan(scores["mia_loss_logreg"])
