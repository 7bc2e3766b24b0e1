"""evaluate(): keys, distances, gradient norms, batchnorm and modes, argument
checks and class requests (the attacks are in test_attacks.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import unlearn
from tests.evaluation.helpers import ATTACK_KEYS, BASE_KEYS, REFERENCE_KEYS
from unlearn import models
from unlearn._core import Split


def test_every_key_is_present_and_sane(mlp, request_splits):
    reference = unlearn.train("mlp", epochs=5, seed=1, cache=False)
    scores = unlearn.evaluate(mlp, reference=reference, **request_splits)
    assert set(scores) == BASE_KEYS | ATTACK_KEYS | REFERENCE_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores.values())
    assert all(0.0 <= scores[k] <= 1.0 for k in ("acc_retain", "acc_forget", "acc_test") + tuple(ATTACK_KEYS))
    assert scores["acc_test"] > 0.85
    assert 0 < scores["js_divergence"] <= math.log(2) and scores["param_distance"] > 0
    assert set(unlearn.evaluate(mlp, attacks=False, **request_splits)) == BASE_KEYS


def test_the_same_model_as_reference_is_at_distance_zero(mlp, request_splits):
    for reference in (mlp, copy.deepcopy(mlp)):
        scores = unlearn.evaluate(mlp, reference=reference, attacks=False, **request_splits)
        assert scores["js_divergence"] == pytest.approx(0.0, abs=1e-12)
        assert scores["activation_distance"] == 0.0
        assert scores["param_distance"] == 0.0


def test_reference_of_another_architecture_is_rejected(mlp, request_splits):
    with pytest.raises(ValueError, match="reference"):
        unlearn.evaluate(mlp, reference=models.build("logreg"), **request_splits)


def test_gradient_norms_match_the_closed_form_for_logistic_regression(request_splits):
    """For softmax regression the gradient of the mean loss is
    (softmax - onehot)^T [x, 1] / n, plus l2 * w for the penalty."""
    torch.manual_seed(0)
    model = models.build("logreg")
    l2 = 0.05
    scores = unlearn.evaluate(model, attacks=False, l2=l2, **request_splits)

    def closed_form(split: Split, l2: float) -> float:
        x = split.inputs.reshape(len(split), -1).double()
        weight, bias = model[1].weight.detach().double(), model[1].bias.detach().double()
        residual = torch.softmax(x @ weight.T + bias, dim=1) - torch.nn.functional.one_hot(split.labels, 10).double()
        grad_w = residual.T @ x / len(split) + l2 * weight
        grad_b = residual.mean(0) + l2 * bias
        return float(torch.cat([grad_w.flatten(), grad_b]).norm())

    assert scores["grad_residual"] == pytest.approx(closed_form(request_splits["retain"], l2), rel=1e-5)
    assert scores["grad_norm_forget"] == pytest.approx(closed_form(request_splits["forget"], 0.0), rel=1e-5)


def test_modes_and_batchnorm_statistics_are_left_alone(request_splits):
    model = models.build("cnn").train()
    model[3].eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unlearn.evaluate(model, attacks=False, reference=copy.deepcopy(model), **request_splits)
    assert [m.training for m in model.modules()] == [m is not model[3] for m in model.modules()]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_inputs_name_the_argument(mlp, request_splits):
    forget, retain, test = (request_splits[k] for k in ("forget", "retain", "test"))
    good = dict(forget=forget, retain=retain, test=test)
    cases = [
        (ValueError, "forget", {**good, "forget": None}),
        (ValueError, "retain", {**good, "retain": (retain.inputs, retain.labels[:-1])}),
        (ValueError, "test", {**good, "test": (test.inputs, test.labels + 10)}),
        (ValueError, "forget", {**good, "forget": (forget.inputs[:, :, :4], forget.labels)}),
        (TypeError, "retain", {**good, "retain": "retain.pt"}),
        (ValueError, "test", {**good, "test": (test.inputs, test.labels.float())}),
        (ValueError, "l2", {**good, "l2": -1.0}),
        (TypeError, "reference", {**good, "reference": "retrained"}),
        (TypeError, "attacks", {**good, "attacks": "yes"}),
        (TypeError, "seed", {**good, "seed": 1.5}),
    ]
    for error, name, kwargs in cases:
        with pytest.raises(error, match=name):
            unlearn.evaluate(mlp, **kwargs)
    with pytest.raises(TypeError, match="model"):
        unlearn.evaluate("mlp", **good)


def test_class_requests_split_the_test_accuracy_by_class(mlp, request_splits, digits):
    scores = unlearn.evaluate(mlp, attacks=False, forget_classes=[3, 5], **request_splits)
    out = mlp(digits.test.inputs).argmax(1)
    gone = (digits.test.labels == 3) | (digits.test.labels == 5)
    expected_forget = float((out[gone] == digits.test.labels[gone]).double().mean())
    expected_retain = float((out[~gone] == digits.test.labels[~gone]).double().mean())
    assert scores["acc_test_forget"] == pytest.approx(expected_forget)
    assert scores["acc_test_retain"] == pytest.approx(expected_retain)
    with pytest.raises(ValueError, match="forget_classes"):
        unlearn.evaluate(mlp, attacks=False, forget_classes=[10], **request_splits)
