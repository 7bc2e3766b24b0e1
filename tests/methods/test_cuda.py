"""Every method with the model and the data on a CUDA device: it runs there,
leaves the model there with finite parameters, and reads batches given on
the CPU one at a time onto the model's device."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import unlearn
from unlearn import Split

from ..devices import cuda_only
from .common import EPOCH_METHODS, method_cases


@pytest.fixture(scope="module")
def task():
    return unlearn.train("cnn"), unlearn.digits()


@cuda_only
@pytest.mark.parametrize("given", ["tensors", "loaders"])
@pytest.mark.parametrize("kind,method", method_cases())
def test_every_method_runs_on_cuda(task, kind, method, given):
    model, digits = task
    device = torch.device("cuda")
    train = digits.train
    forget, retain = Split(train.inputs[:20], train.labels[:20]), Split(train.inputs[20:], train.labels[20:])
    if given == "tensors":
        forget = Split(forget.inputs.to(device), forget.labels.to(device))
        retain = Split(retain.inputs.to(device), retain.labels.to(device))
        as_given = lambda split: (split.inputs, split.labels)  # noqa: E731
    else:
        as_given = lambda split: DataLoader(TensorDataset(split.inputs, split.labels), batch_size=64)  # noqa: E731
    request = {"retain": as_given(retain)}
    if kind == "class":
        request["forget_classes"] = [3]
    else:
        request["forget"] = (forget.inputs, forget.labels) if method in ("lcodec", "l2ul") else as_given(forget)
    options = {"epochs": 1} if method in EPOCH_METHODS else {}
    result = unlearn.forget(model.to(device), method, seed=0, **request, **options)
    assert all(p.device.type == "cuda" and bool(torch.isfinite(p).all()) for p in result.model.parameters())
    assert all(p.device.type == "cuda" for p in model.parameters())  # the caller's model stays where it was
    on_device = lambda split: (split.inputs.to(device), split.labels.to(device))  # noqa: E731
    scores = unlearn.evaluate(
        result.model, forget=on_device(forget), retain=on_device(retain), test=on_device(digits.test)
    )
    assert 0 <= scores["acc_test"] <= 1
