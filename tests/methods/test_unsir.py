"""UNSIR (Tarun et al., IEEE TNNLS 2023): the learned noise raises the
forget class's loss, the paper's defaults forget a digit class from the
classes alone, and the method is deterministic per seed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unlearn
from unlearn.methods import forget
from unlearn.methods.unsir import error_maximising_noise

FORGET = 3


@pytest.fixture(scope="module")
def setup():
    return unlearn.digits(), unlearn.train("mlp")


def _accuracy(model, inputs, labels) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(1) == labels).double().mean())


def _class_request(digits) -> dict:
    return {"retain": (digits.train.inputs, digits.train.labels), "forget_classes": [FORGET]}


def test_the_noise_raises_the_forget_class_loss(setup):
    digits, model = setup
    shape = tuple(digits.train.inputs.shape[1:])
    start, labels = error_maximising_noise(model, [FORGET, 5], shape, 64, 0, 0.1, 0.1, torch.Generator().manual_seed(0))
    noise, _ = error_maximising_noise(model, [FORGET, 5], shape, 64, 40, 0.1, 0.1, torch.Generator().manual_seed(0))
    assert labels.tolist() == [FORGET] * 64 + [5] * 64
    with torch.no_grad():
        per_sample = [F.cross_entropy(model(x), labels, reduction="none") for x in (start, noise)]
    for rows in (slice(0, 64), slice(64, 128)):  # each class's noise, not only the mean
        assert float(per_sample[1][rows].mean()) > 2 * float(per_sample[0][rows].mean())


def test_paper_defaults_forget_a_digit_class(setup):
    digits, model = setup
    test = digits.test
    gone = test.labels == FORGET
    result = forget(model, "unsir", seed=0, **_class_request(digits))
    assert _accuracy(result.model, test.inputs[gone], test.labels[gone]) <= 0.05
    kept_before = _accuracy(model, test.inputs[~gone], test.labels[~gone])
    assert _accuracy(result.model, test.inputs[~gone], test.labels[~gone]) >= kept_before - 0.05
    assert result.report["noise_loss"] > 10 and result.report["retain_subset"] == int((digits.train.labels != 3).sum())


def test_same_seed_same_weights_and_no_forget_samples_needed(setup):
    digits, model = setup
    small = dict(noise_samples=16, noise_copies=2, retain_per_class=30, seed=1)
    a = forget(model, "unsir", **small, **_class_request(digits)).model
    b = forget(model, "unsir", **small, **_class_request(digits)).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    kept = digits.train.labels != FORGET  # the classes alone: no sample of class 3 anywhere
    c = forget(
        model, "unsir", **small, retain=(digits.train.inputs[kept], digits.train.labels[kept]), forget_classes=[3]
    )
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), c.model.parameters()))


def test_unsir_serves_class_requests_only(setup):
    digits, model = setup
    with pytest.raises(ValueError, match="forgets whole classes"):
        forget(
            model,
            "unsir",
            forget=(digits.train.inputs[:4], digits.train.labels[:4]),
            retain=_class_request(digits)["retain"],
        )
