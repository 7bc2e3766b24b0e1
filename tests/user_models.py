"""Models the methods were not tuned on, trained the way a user would train
them (Adam, no weight decay, no recipe of the library): a 1-D CNN on MNIST-1D
and a narrow ResNet-18 fitted to CIFAR-shaped inputs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

import unlearn
from unlearn import Split
from unlearn.models import MNIST1DCNN, ResNet18


@dataclass(frozen=True)
class Trained:
    """A trained model with its training and test data."""

    name: str
    model: nn.Module
    train: Split
    test: Split


def adam(model: nn.Module, train: Split, epochs: int, batch_size: int, lr: float, seed: int) -> nn.Module:
    """Mini-batch Adam without weight decay, seeded; the model ends in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(order) - 1, batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(train.inputs[rows]), train.labels[rows]).backward()
            optimizer.step()
    return model.eval()


@lru_cache(maxsize=1)
def mnist1d_cnn() -> Trained:
    """The MNIST-1D convolutional baseline, 15 epochs of Adam (about 0.93 train
    and 0.86 test accuracy)."""
    data = unlearn.data.mnist1d()
    torch.manual_seed(0)
    model = adam(MNIST1DCNN(), data.train, epochs=15, batch_size=100, lr=1e-2, seed=0)
    return Trained("mnist1d-cnn", model, data.train, data.test)


def _cifar_shaped(samples: int, generator: torch.Generator, patterns: torch.Tensor) -> Split:
    labels = torch.randint(0, 10, (samples,), generator=generator)
    inputs = patterns[labels] + torch.randn(samples, 3, 32, 32, generator=generator)
    return Split(inputs, labels)


@lru_cache(maxsize=1)
def resnet18() -> Trained:
    """A width-4 ResNet-18 (BasicBlock, BatchNorm) fitted to 150 CIFAR-shaped
    inputs: one random pattern per class plus as much noise."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randn(10, 3, 32, 32, generator=generator)
    train, test = _cifar_shaped(150, generator, patterns), _cifar_shaped(150, generator, patterns)
    torch.manual_seed(0)
    model = adam(ResNet18(width=4), train, epochs=6, batch_size=50, lr=1e-2, seed=0)
    return Trained("resnet18", model, train, test)
