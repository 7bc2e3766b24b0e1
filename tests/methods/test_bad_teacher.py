"""Bad teaching on the digits: what a class and an instance request do with
the paper's defaults, the same seed giving the same weights, and the
student's forget outputs moving toward the incompetent teacher's while its
retained outputs stay with the original's."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import unlearn
from unlearn.methods import forget
from unlearn.training import reinitialize

from .common import accuracy, digits_cnn_request, distillation_kl


@pytest.fixture(scope="module")
def setup():
    return digits_cnn_request()


@pytest.mark.xfail(
    strict=True,
    reason="the paper's defaults (one epoch of Adam at lr 1e-4, batches of 256) make 3 steps on the digits: "
    "class-3 test accuracy stays at 0.98",
)
def test_a_class_request_forgets_the_class_and_keeps_the_others(setup):
    digits, model, fs, rs = setup
    train, test = digits.train, digits.test
    out = forget(model, "bad_teacher", retain=(train.inputs, train.labels), forget_classes=[3], seed=0).model
    gone = test.labels == 3
    kept = (test.inputs[~gone], test.labels[~gone])
    assert accuracy(out, *kept) >= accuracy(model, *kept) - 0.05
    assert accuracy(out, test.inputs[gone], test.labels[gone]) <= 0.05


def test_an_instance_request_stays_near_retraining(setup):
    digits, model, fs, rs = setup
    test = (digits.test.inputs, digits.test.labels)
    retrained = forget(model, "retrain", forget=fs, retain=rs, seed=0).model
    out = forget(model, "bad_teacher", forget=fs, retain=rs, seed=0).model
    assert abs(accuracy(out, *test) - accuracy(retrained, *test)) <= 0.03
    assert accuracy(out, *fs) >= accuracy(retrained, *fs) - 0.15


def test_the_same_seed_gives_the_same_weights(setup):
    digits, model, fs, rs = setup
    a = forget(model, "bad_teacher", forget=fs, retain=rs, seed=4)
    b = forget(model, "bad_teacher", forget=fs, retain=rs, seed=4)
    c = forget(model, "bad_teacher", forget=fs, retain=rs, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert any(not torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), c.model.state_dict().values()))


def test_forget_outputs_move_toward_the_incompetent_teacher(setup):
    digits, model, fs, rs = setup
    train = digits.train
    gone = train.labels == 3
    forget_x, retain_x = train.inputs[gone], train.inputs[~gone][:300]
    bad = reinitialize(copy.deepcopy(model), 0)
    # Enough steps to see the mechanism on this small set (the defaults make 3).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", unlearn.QualityWarning)
        result = forget(
            model,
            "bad_teacher",
            retain=(train.inputs, train.labels),
            forget_classes=[3],
            epochs=3,
            lr=1e-3,
            batch_size=64,
        )
    # The forget outputs come close to the random teacher's ...
    assert distillation_kl(result.model, bad, forget_x) < 0.2 * distillation_kl(model, bad, forget_x)
    # ... while the retained outputs move far less from the original's than the forget outputs do.
    assert distillation_kl(result.model, model, retain_x) < 0.1 * distillation_kl(result.model, model, forget_x)
