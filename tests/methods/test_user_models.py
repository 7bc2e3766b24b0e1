"""Every method, with its defaults, on models it was not tuned on: a 1-D CNN
on MNIST-1D and a ResNet-18 at CIFAR shape, both trained with Adam and no
weight decay. A method may lose accuracy, but never silently: a loss of more
than 5 points of test accuracy comes with a QualityWarning."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import unlearn
from unlearn import Split
from unlearn.methods import applicable, describe

from ..user_models import mnist1d_cnn, resnet18

pytest.importorskip("mnist1d")

MODELS = {"mnist1d-cnn": (mnist1d_cnn, 10), "resnet18": (resnet18, 5)}
FORGET_CLASS = 3


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for model in MODELS:
        for kind in ("instance", "class"):
            for method in applicable(kind):
                if "mnemonic_codes" not in describe(method)["needs"]:  # needs a model trained with codes
                    cases.append((model, kind, method))
    return cases


def _accuracy(model: torch.nn.Module, split: Split) -> float:
    with torch.no_grad():
        return float((model(split.inputs).argmax(1) == split.labels).double().mean())


def _request(trained, kind: str, samples: int) -> tuple[dict, Split]:
    """The forget request and the test samples its accuracy is judged on."""
    if kind == "class":
        kept = trained.test.labels != FORGET_CLASS
        return {"retain": trained.train, "forget_classes": [FORGET_CLASS]}, Split(
            trained.test.inputs[kept], trained.test.labels[kept]
        )
    order = torch.randperm(len(trained.train), generator=torch.Generator().manual_seed(0))
    forget, retain = order[:samples], order[samples:]
    request = {
        "forget": (trained.train.inputs[forget], trained.train.labels[forget]),
        "retain": (trained.train.inputs[retain], trained.train.labels[retain]),
    }
    return request, trained.test


@pytest.mark.parametrize("model_name,kind,method", _cases())
def test_defaults_never_lose_accuracy_silently(model_name, kind, method):
    build, samples = MODELS[model_name]
    trained = build()
    before = copy.deepcopy(trained.model.state_dict())
    request, judged = _request(trained, kind, samples)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = unlearn.forget(trained.model, method, seed=0, **request)
    assert all(torch.equal(before[k], v) for k, v in trained.model.state_dict().items())  # the caller's model
    assert all(bool(torch.isfinite(p).all()) for p in result.model.parameters())
    loss = _accuracy(trained.model, judged) - _accuracy(result.model.eval(), judged)
    warned = any(issubclass(w.category, unlearn.QualityWarning) for w in caught)
    assert loss <= 0.05 or warned, f"{method} lost {loss:.1%} of test accuracy without a QualityWarning"
