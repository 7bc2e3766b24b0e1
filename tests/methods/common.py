"""What the tests of the methods share: the digits CNN with a request of
20 random training samples, a model's accuracy, loss and distillation KL
to another model on samples, and every (request kind, method) pair that
runs without special training."""

from __future__ import annotations

import torch

import unlearn
from unlearn.methods import applicable, describe
from unlearn.methods.distillation import distill_kl


def digits_cnn_request():
    """(digits, the trained digits CNN, forget pair, retain pair): the first
    20 of a seeded permutation of the training samples are forgotten."""
    digits = unlearn.digits()
    order = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))
    train = digits.train
    forget = (train.inputs[order[:20]], train.labels[order[:20]])
    retain = (train.inputs[order[20:]], train.labels[order[20:]])
    return digits, unlearn.train("cnn"), forget, retain


def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.eval()(inputs).argmax(1) == labels).double().mean())


def cross_entropy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model.eval()(inputs), labels))


def distillation_kl(student: torch.nn.Module, teacher: torch.nn.Module, inputs: torch.Tensor) -> float:
    """The distillation KL (temperature 1) of `student`'s outputs to `teacher`'s on `inputs`."""
    with torch.no_grad():
        return float(distill_kl(student.eval()(inputs), teacher.eval()(inputs), 1.0))


EPOCH_METHODS = {"retrain", "finetune", "neggrad", "random_label", "neggrad_plus"}
"""Methods whose length is `epochs`: the tests run them for one."""


def method_cases() -> list[tuple[str, str]]:
    """(kind, method) for both request kinds and every method applicable to
    it but those that need a model trained with mnemonic codes."""
    return [
        (kind, name)
        for kind in ("instance", "class")
        for name in applicable(kind)
        if "mnemonic_codes" not in describe(name)["needs"]
    ]
