"""Boundary Shrink and Boundary Expanding (Chen et al., CVPR 2023): the
neighbour search lands each forget sample in a wrong class near it, the
methods are deterministic per seed, Boundary Expanding leaves the
architecture as it was and refuses models it cannot widen, and class
forgetting on the digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unlearn
from unlearn.methods import forget
from unlearn.methods.boundary import nearest_wrong_labels, output_layer

FORGET = 3


@pytest.fixture(scope="module")
def setup():
    digits = unlearn.digits()
    return digits, unlearn.train("cnn"), unlearn.train("mlp")


def _accuracy(model, inputs, labels) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(1) == labels).double().mean())


def _class_accuracies(model, test) -> tuple[float, float]:
    gone = test.labels == FORGET
    return (
        _accuracy(model, test.inputs[gone], test.labels[gone]),
        _accuracy(model, test.inputs[~gone], test.labels[~gone]),
    )


def _class_request(digits) -> dict:
    return {"retain": (digits.train.inputs, digits.train.labels), "forget_classes": [FORGET]}


def test_the_neighbour_search_lands_in_a_wrong_class_near_the_sample(setup):
    digits, cnn, _ = setup
    mine = digits.train.labels == FORGET
    x, y = digits.train.inputs[mine], digits.train.labels[mine]
    for attack in ("fgsm", "pgd"):
        x_adv, nearest = nearest_wrong_labels(
            cnn, x, y, 0.3, attack=attack, steps=10, bounds=(0.0, 1.0), gen=torch.Generator().manual_seed(0)
        )
        assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        with torch.no_grad():
            assert torch.equal(cnn(x_adv).argmax(1), nearest)  # the label is the class the attacked sample lands in
        assert float((nearest != y).double().mean()) >= 0.95  # a wrong class for nearly every sample


@pytest.mark.parametrize("method", ["boundary_shrink", "boundary_expand"])
def test_same_seed_same_weights(setup, method):
    digits, _, mlp = setup
    a = forget(mlp, method, seed=5, epochs=2, lr=1e-3, **_class_request(digits)).model
    b = forget(mlp, method, seed=5, epochs=2, lr=1e-3, **_class_request(digits)).model
    assert any(not torch.equal(p, q) for p, q in zip(mlp.parameters(), a.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_boundary_shrink_forgets_a_digit_class(setup):
    """At a bound of 0.3 the attack crosses for 99% of the 3s (0.45 at the
    paper's 0.1); 50 epochs at lr 1e-3, unguarded: the kept classes dip
    more than 5 points on the way, then recover."""
    digits, cnn, _ = setup
    result = forget(cnn, "boundary_shrink", bound=0.3, lr=1e-3, epochs=50, guard=False, **_class_request(digits))
    forget_acc, kept = _class_accuracies(result.model, digits.test)
    assert result.report["attack_success"] >= 0.95
    assert forget_acc <= 0.05
    assert kept >= _class_accuracies(cnn, digits.test)[1] - 0.05


@pytest.mark.xfail(
    strict=True,
    reason="measured on the digits CNN: the paper's defaults (FGSM bound 0.1, lr 1e-5, 10 epochs) leave the forget "
    "class at 0.978 test accuracy (30 steps; the paper's CIFAR runs take 790)",
)
def test_boundary_shrink_defaults_forget_a_digit_class(setup):
    digits, cnn, _ = setup
    forget_acc, kept = _class_accuracies(forget(cnn, "boundary_shrink", **_class_request(digits)).model, digits.test)
    assert forget_acc <= 0.05 and kept >= _class_accuracies(cnn, digits.test)[1] - 0.05


def test_boundary_expand_keeps_the_architecture_and_pushes_the_class_out(setup):
    digits, cnn, _ = setup
    result = forget(cnn, "boundary_expand", lr=1e-3, epochs=3, guard=False, **_class_request(digits))
    assert {k: v.shape for k, v in result.model.state_dict().items()} == {
        k: v.shape for k, v in cnn.state_dict().items()
    }
    assert isinstance(result.model[-1], nn.Linear) and result.model[-1].out_features == 10
    assert not result.model[-1]._forward_hooks
    mine = digits.train.labels == FORGET
    before = _accuracy(cnn, digits.train.inputs[mine], digits.train.labels[mine])
    assert _accuracy(result.model, digits.train.inputs[mine], digits.train.labels[mine]) < before - 0.2


def test_boundary_expand_refuses_a_model_without_a_linear_output(setup):
    digits, _, mlp = setup
    wrapped = nn.Sequential(mlp, nn.LogSoftmax(dim=1))
    with pytest.raises(ValueError, match="output of an nn.Linear layer"):
        forget(wrapped, "boundary_expand", **_class_request(digits))
    assert output_layer(mlp, digits.train.inputs[:2]) is [m for m in mlp.modules() if isinstance(m, nn.Linear)][-1]


@pytest.mark.xfail(
    strict=True,
    reason="measured on the digits CNN: at the paper's defaults (lr 1e-5, 10 epochs) the forget class keeps 0.957; "
    "at lr 1e-3 the guard stops at 0.72 (kept classes 0.93), unguarded lr 1e-3 for 50 epochs forgets it but leaves "
    "0.37 on the kept classes",
)
def test_boundary_expand_defaults_forget_a_digit_class(setup):
    digits, cnn, _ = setup
    forget_acc, kept = _class_accuracies(forget(cnn, "boundary_expand", **_class_request(digits)).model, digits.test)
    assert forget_acc <= 0.05 and kept >= _class_accuracies(cnn, digits.test)[1] - 0.05
