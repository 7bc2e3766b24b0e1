"""The baselines: each runs on an instance and a class request and changes
what it should; missing data and bad options raise clear errors."""

from __future__ import annotations

import pytest
import torch

import unlearn
from unlearn.compare import digits_request
from unlearn.methods import available, forget


@pytest.fixture(scope="module")
def setup():
    digits = unlearn.digits()
    request = digits_request(digits, forget_indices=range(20))
    fs = (request.forget.inputs, request.forget.labels)
    rs = (request.retain.inputs, request.retain.labels)
    return digits, unlearn.train("cnn"), fs, rs


def _accuracy(model, inputs, labels) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(1) == labels).double().mean())


def _loss(model, inputs, labels) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(inputs), labels))


BASELINES = ["finetune", "neggrad", "neggrad_plus", "random_label", "ssd", "fisher"]


def test_every_baseline_is_listed():
    assert set(BASELINES) <= set(available())


@pytest.mark.parametrize("method", BASELINES)
def test_instance_request_changes_the_weights_deterministically(setup, method):
    digits, model, fs, rs = setup
    a = forget(model, method, forget=fs, retain=rs, seed=3)
    b = forget(model, method, forget=fs, retain=rs, seed=3)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), a.model.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_neggrad_raises_the_forget_loss_and_random_labels_break_the_forget_set(setup):
    """The algorithms themselves: on this confident CNN every random-label
    step costs the retained data over 5 points, so the guard would stop it."""
    digits, model, fs, rs = setup
    assert _loss(forget(model, "neggrad", forget=fs).model, *fs) > 2 * _loss(model, *fs)
    with pytest.warns(unlearn.QualityWarning, match="random_label: the retained accuracy fell"):
        unguarded = forget(model, "random_label", forget=fs, retain=rs, guard=False).model
    assert _accuracy(unguarded, *fs) < 0.5


def test_finetune_and_neggrad_plus_keep_the_retained_accuracy(setup):
    digits, model, fs, rs = setup
    for method in ("finetune", "neggrad_plus"):
        out = forget(model, method, forget=fs, retain=rs).model
        assert _accuracy(out, *rs) >= 0.98
        assert _loss(out, *fs) >= _loss(model, *fs) or method == "finetune"


def test_ssd_forgets_a_digit_class_with_the_paper_defaults(setup):
    digits, model, fs, rs = setup
    train, test = digits.train, digits.test
    out = forget(model, "ssd", retain=(train.inputs, train.labels), forget_classes=[3]).model
    gone = test.labels == 3
    assert _accuracy(out, test.inputs[gone], test.labels[gone]) <= 0.05
    assert (
        _accuracy(out, test.inputs[~gone], test.labels[~gone])
        >= _accuracy(model, test.inputs[~gone], test.labels[~gone]) - 0.05
    )


@pytest.mark.parametrize("method", BASELINES)
def test_class_requests_run(setup, method):
    digits, model, fs, rs = setup
    result = forget(model, method, retain=(digits.train.inputs, digits.train.labels), forget_classes=[7], seed=0)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), result.model.parameters()))


@pytest.mark.parametrize(
    "method, kwargs, match",
    [
        ("finetune", dict(retain=None), "retain: finetune needs"),
        ("neggrad_plus", dict(retain=None), "retain: neggrad_plus needs"),
        ("ssd", dict(retain=None), "retain: ssd needs"),
        ("fisher", dict(retain=None), "retain: fisher needs"),
        ("finetune", dict(epochs=0), "epochs must be >= 1"),
        ("neggrad", dict(lr=-1.0), "lr must be > 0"),
        ("neggrad_plus", dict(alpha=1.5), "alpha must be > 0 and < 1"),
        ("ssd", dict(alpha=0.0), "alpha must be > 0"),
        ("fisher", dict(max_std=0.0), "max_std must be > 0"),
    ],
)
def test_bad_requests_leave_the_model_unchanged(setup, method, kwargs, match):
    digits, model, fs, rs = setup
    state = {k: v.clone() for k, v in model.state_dict().items()}
    args = {"forget": fs, "retain": rs, **kwargs}
    with pytest.raises(ValueError, match=match):
        forget(model, method, **args)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
