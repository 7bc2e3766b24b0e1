"""l1-sparse on the digits CNN: the penalty shrinks the weights (and is all
that separates it from fine-tuning), an instance request ends near
retraining, a seed fixes the result. With the paper's penalty the digits
class is not forgotten (an expected failure, with the measured numbers); a
stronger penalty forgets it."""

from __future__ import annotations

import pytest
import torch

from unlearn.methods import forget
from unlearn.methods.l1_sparse import l1_norm, penalty_weight

from .common import accuracy, digits_cnn_request

FORGET_CLASS = 3


@pytest.fixture(scope="module")
def setup():
    return digits_cnn_request()


def _class_request(digits, model, **options) -> tuple[float, float, float]:
    """Forget-class test accuracy after, other classes' test accuracy before and after."""
    train, test = digits.train, digits.test
    out = forget(model, "l1_sparse", retain=(train.inputs, train.labels), forget_classes=[FORGET_CLASS], **options)
    gone = test.labels == FORGET_CLASS
    kept = (test.inputs[~gone], test.labels[~gone])
    return (
        accuracy(out.model, test.inputs[gone], test.labels[gone]),
        accuracy(model, *kept),
        accuracy(out.model, *kept),
    )


def test_the_penalty_decays_linearly_epoch_by_epoch():
    assert [penalty_weight(1.0, e, 10) for e in range(10)] == pytest.approx([1 - e / 10 for e in range(10)])
    assert penalty_weight(5e-4, 0, 3) == 5e-4


def test_the_penalty_shrinks_the_weights_and_is_all_that_differs_from_finetune(setup):
    digits, model, fs, rs = setup
    sparse = forget(model, "l1_sparse", forget=fs, retain=rs, epochs=3)
    tuned = forget(model, "finetune", forget=fs, retain=rs, epochs=3)
    assert float(l1_norm(sparse.model).detach()) < float(l1_norm(tuned.model).detach()) < float(l1_norm(model).detach())
    assert sparse.report["l1_norm_after"] < sparse.report["l1_norm_before"]
    plain = forget(model, "l1_sparse", forget=fs, retain=rs, epochs=3, gamma=0.0).model
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), tuned.model.parameters()))


def test_an_instance_request_ends_near_retraining(setup):
    digits, model, fs, rs = setup
    test = digits.test
    out = forget(model, "l1_sparse", forget=fs, retain=rs).model
    retrained = forget(model, "retrain", forget=fs, retain=rs).model
    assert abs(accuracy(out, test.inputs, test.labels) - accuracy(retrained, test.inputs, test.labels)) <= 0.03
    assert accuracy(out, *fs) >= accuracy(retrained, *fs) - 0.1


@pytest.mark.xfail(
    strict=True,
    reason="with the paper's gamma 5e-4 over 10 epochs (190 steps here) the penalty barely shrinks this CNN's weights: "
    "measured forget-class test accuracy 0.978 (unchanged), other classes 0.993 (0.990 before)",
)
def test_a_class_request_with_the_paper_defaults_forgets_the_class(setup):
    digits, model, fs, rs = setup
    gone, before, after = _class_request(digits, model)
    assert gone <= 0.05 and after >= before - 0.05


def test_a_stronger_penalty_forgets_the_class_and_keeps_the_others(setup):
    digits, model, fs, rs = setup
    gone, before, after = _class_request(digits, model, gamma=2e-2)
    assert gone <= 0.05
    assert after >= before - 0.05


def test_a_seed_fixes_the_weights(setup):
    digits, model, fs, rs = setup
    a = forget(model, "l1_sparse", forget=fs, retain=rs, seed=4, epochs=2).model
    b = forget(model, "l1_sparse", forget=fs, retain=rs, seed=4, epochs=2).model
    c = forget(model, "l1_sparse", forget=fs, retain=rs, seed=5, epochs=2).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(retain=None), "retain: l1_sparse needs"), (dict(gamma=-1.0), "gamma must be >= 0")],
)
def test_bad_requests_are_refused(setup, kwargs, match):
    digits, model, fs, rs = setup
    with pytest.raises(ValueError, match=match):
        forget(model, "l1_sparse", **{"forget": fs, "retain": rs, **kwargs})
