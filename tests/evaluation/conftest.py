"""The digits, a forget/retain/test request and a trained MLP, shared by the evaluation tests."""

from __future__ import annotations

import pytest
import torch

import unlearn
from unlearn import data
from unlearn._core import Split


@pytest.fixture(scope="package")
def digits() -> data.TrainTest:
    return data.digits()


@pytest.fixture(scope="package")
def request_splits(digits) -> dict[str, Split]:
    """Forget the first 200 training samples, retain the rest."""
    train = digits.train
    return {
        "forget": Split(train.inputs[:200], train.labels[:200]),
        "retain": Split(train.inputs[200:], train.labels[200:]),
        "test": digits.test,
    }


@pytest.fixture(scope="package")
def mlp() -> torch.nn.Module:
    return unlearn.train("mlp", epochs=5, cache=False)
