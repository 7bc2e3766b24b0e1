"""SCRUB on the digits: a class request forgets the class and keeps the
others, an instance request stays near retraining, the same seed gives the
same weights, and the max-steps push the student away from the teacher on
the forget data while the min-steps keep it close on the retained data."""

from __future__ import annotations

import pytest
import torch

from unlearn.methods import forget

from .common import accuracy, digits_cnn_request, distillation_kl


@pytest.fixture(scope="module")
def setup():
    return digits_cnn_request()


@pytest.fixture(scope="module")
def class_result(setup):
    """SCRUB with its defaults on a request to forget class 3."""
    digits, model, fs, rs = setup
    train = digits.train
    return forget(model, "scrub", retain=(train.inputs, train.labels), forget_classes=[3], seed=0)


def test_a_class_request_forgets_the_class_and_keeps_the_others(setup, class_result):
    digits, model, fs, rs = setup
    test = digits.test
    out = class_result.model
    gone = test.labels == 3
    assert accuracy(out, test.inputs[gone], test.labels[gone]) <= 0.05
    kept = (test.inputs[~gone], test.labels[~gone])
    assert accuracy(out, *kept) >= accuracy(model, *kept) - 0.05


def test_an_instance_request_stays_near_retraining(setup):
    digits, model, fs, rs = setup
    test = (digits.test.inputs, digits.test.labels)
    retrained = forget(model, "retrain", forget=fs, retain=rs, seed=0).model
    out = forget(model, "scrub", forget=fs, retain=rs, seed=0).model
    assert abs(accuracy(out, *test) - accuracy(retrained, *test)) <= 0.03
    # Forgetting typical samples is not driving their accuracy to 0.
    assert accuracy(out, *fs) >= accuracy(retrained, *fs) - 0.15


def test_the_same_seed_gives_the_same_weights(setup):
    digits, model, fs, rs = setup
    a = forget(model, "scrub", forget=fs, retain=rs, seed=4, epochs=2, max_epochs=1)
    b = forget(model, "scrub", forget=fs, retain=rs, seed=4, epochs=2, max_epochs=1)
    c = forget(model, "scrub", forget=fs, retain=rs, seed=5, epochs=2, max_epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert any(not torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), c.model.state_dict().values()))


def test_max_steps_leave_the_teacher_on_the_forget_data_only(setup, class_result):
    digits, model, fs, rs = setup
    train = digits.train
    gone = train.labels == 3
    forget_x, retain_x = train.inputs[gone], train.inputs[~gone]
    assert class_result.report["max_steps"] > 0
    # The student starts as the teacher (KL 0 everywhere); it ends far from it on the
    # forget class and close to it on the other classes.
    forget_kl = distillation_kl(class_result.model, model, forget_x)
    retain_kl = distillation_kl(class_result.model, model, retain_x)
    assert forget_kl > 1.0
    assert retain_kl < 0.1 * forget_kl


def test_rewinding_returns_the_epoch_end_closest_to_the_target_error(setup):
    digits, model, fs, rs = setup
    result = forget(model, "scrub", forget=fs, retain=rs, seed=0, epochs=4, max_epochs=4, rewind_error=0.1)
    errors = result.report["epoch_forget_errors"]
    assert len(errors) == 4
    chosen = errors[result.report["epoch_ends"].index(result.report["rewound_to_step"])]
    assert abs(chosen - 0.1) == min(abs(e - 0.1) for e in errors)
    error = 1 - accuracy(result.model, *fs)
    assert error == pytest.approx(chosen)
