"""The retrain baseline: a seeded fit from scratch on the retained data only."""

from __future__ import annotations

import pytest
import torch

import unlearn
from unlearn import data, models, training
from unlearn._core import Split
from unlearn.methods import available, forget

SETTINGS = dict(epochs=3, lr=0.1, weight_decay=0.0, batch_size=128)


@pytest.fixture(scope="module")
def class_request() -> dict[str, Split]:
    """Forget every training sample of class 3."""
    train = data.digits().train
    gone = train.labels == 3
    return {
        "forget": (train.inputs[gone], train.labels[gone]),
        "retain": (train.inputs[~gone], train.labels[~gone]),
    }


def test_retrain_is_registered():
    assert "retrain" in available()


def test_retrain_fits_a_fresh_model_on_retain_only(class_request):
    trained = unlearn.train("mlp", epochs=2, cache=False)
    result = forget(trained, "retrain", seed=5, **class_request, **SETTINGS)
    assert result.report["samples"] == len(class_request["retain"][1])
    assert result.report["epochs"] == SETTINGS["epochs"]

    expected = models.build("mlp")
    training.reinitialize(expected, 5)
    training.fit(expected, class_request["retain"], seed=5, **SETTINGS)
    for ours, theirs in zip(result.model.parameters(), expected.parameters()):
        assert torch.equal(ours, theirs)
    assert not result.model.training
    forgotten = result.model(class_request["forget"][0]).argmax(1)
    assert float((forgotten == 3).double().mean()) < 0.05  # class 3 was never seen


def test_retrain_is_deterministic_for_a_seed(class_request):
    model = models.build("logreg")
    first = forget(model, "retrain", seed=0, **class_request, **SETTINGS).model
    again = forget(model, "retrain", seed=0, **class_request, **SETTINGS).model
    other = forget(model, "retrain", seed=1, **class_request, **SETTINGS).model
    assert torch.equal(first[1].weight, again[1].weight)
    assert not torch.equal(first[1].weight, other[1].weight)


def test_retrain_uses_the_training_defaults(class_request, monkeypatch):
    seen = {}

    def record(model, split, **settings):
        seen.update(settings)
        return [0.0]

    monkeypatch.setattr(training, "fit", record)
    report = forget(models.build("logreg"), "retrain", **class_request).report
    for key, value in training.TRAINING_DEFAULTS.items():
        assert seen[key] == value and report[key] == value


def test_retrain_needs_retain(class_request):
    with pytest.raises(ValueError, match="retain"):
        forget(models.build("logreg"), "retrain", forget=class_request["forget"])


def test_class_request_moves_forget_class_samples_out_of_retain():
    from unlearn._core import Split, class_request

    x = torch.arange(12.0)[:, None]
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
    forget, retain = class_request(None, Split(x, labels), [1, 3])
    assert sorted(forget.labels.tolist()) == [1, 1, 1, 3, 3, 3]
    assert sorted(retain.labels.tolist()) == [0, 0, 0, 2, 2, 2]
    assert set(forget.inputs[:, 0].tolist()) | set(retain.inputs[:, 0].tolist()) == set(x[:, 0].tolist())
    given, retain = class_request(Split(x[1:2], labels[1:2]), Split(x[:4], labels[:4]), [1])
    assert given.labels.tolist() == [1, 1] and retain.labels.tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match="forget: samples of classes \\[2\\]"):
        class_request(Split(x[2:3], labels[2:3]), None, [1])


def test_a_class_request_retrains_without_the_forget_classes(monkeypatch):
    """All data may come as `retain`: retraining for a class request fits only the other classes."""
    seen = {}

    def record(model, split, **settings):
        seen["labels"] = split.labels.clone()
        return [0.0]

    monkeypatch.setattr(training, "fit", record)
    x = torch.randn(40, 64)
    labels = torch.arange(40) % 10
    report = forget(models.build("logreg"), "retrain", retain=(x, labels), forget_classes=[3]).report
    assert report["samples"] == 36 and 3 not in seen["labels"].tolist()
