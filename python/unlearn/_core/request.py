"""The request every layer shares: the data of a forget request, its
validation against the model, and the result of a method."""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

Data = Union[DataLoader, Dataset, Sequence[torch.Tensor], "Split"]


@dataclass
class Split:
    """Inputs and integer labels of one part of a request, in memory on the
    model's device. `stream.Stream` reads the same interface from DataLoaders."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batches(self, size: Optional[int] = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches of at most `size` samples (all at once when None)."""
        size = size or max(1, len(self))
        for start in range(0, len(self), size):
            yield self.inputs[start : start + size], self.labels[start : start + size]

    def shuffled(self, size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch in the order `torch.randperm(len, generator)`, in batches of
        at most `size` (a trailing single sample joins the batch before, since
        BatchNorm cannot normalise one sample alone)."""
        order = torch.randperm(len(self), generator=generator).to(self.labels.device)
        for start, stop in batch_bounds(len(self), size):
            yield self.inputs[order[start:stop]], self.labels[order[start:stop]]

    def steps(self, size: int) -> int:
        """Batches of `shuffled(size, ...)`."""
        return len(batch_bounds(len(self), size))

    def sample(self, size: int, generator: torch.Generator) -> "Split":
        """The rows `torch.randperm(len, generator)[:size]`."""
        rows = torch.randperm(len(self), generator=generator)[:size].to(self.labels.device)
        return Split(self.inputs[rows], self.labels[rows])

    def where(self, classes: Sequence[int], keep: str) -> "Split":
        """The samples whose label is in `classes` (keep="in") or not ("out");
        with "only", all of them, refusing any label outside `classes`."""
        inside = torch.isin(self.labels, torch.tensor(list(classes), device=self.labels.device))
        if keep == "only":
            if not bool(inside.all()):
                raise ValueError(
                    f"forget: samples of classes {sorted(set(self.labels[~inside].tolist()))} are not among "
                    f"forget_classes {list(classes)}"
                )
            return self
        mask = inside if keep == "in" else ~inside
        return Split(self.inputs[mask], self.labels[mask])


def batch_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one sample joins the one before, since
    BatchNorm cannot normalise a single sample."""
    bounds = [(start, min(start + size, n)) for start in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


@dataclass
class ForgetResult:
    """The unlearned model (a copy unless inplace=True), what the method did,
    and the wall-clock time of the unlearning call."""

    model: nn.Module
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def check_model(model: Any, name: str = "model") -> nn.Module:
    """A torch.nn.Module whose parameters and buffers hold values (not on the meta device)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        raise ValueError(f"{name} has parameters on the meta device: they hold no values (load its weights first)")
    return model


def batch_pair(batch: Any, name: str) -> tuple[torch.Tensor, Any]:
    """(inputs, labels) of one DataLoader batch: the first two entries of a tuple or list."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor):
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        raise TypeError(
            f"{name}: the DataLoader yields dict batches (keys {sorted(map(str, batch))}); it must yield "
            "(inputs, labels) pairs, e.g. through a collate_fn"
        )
    raise TypeError(f"{name}: a DataLoader batch must be an (inputs, labels) pair, got {type(batch).__name__}")


def check_pair(inputs: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    """Inputs and integer labels that belong together: one 1-D label per
    input, floating-point inputs, both with values and on one device."""
    if labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"{name}: labels must be a 1-D tensor with one label per input, got inputs {tuple(inputs.shape)} "
            f"and labels {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"{name}: labels must be integer class indices, got {labels.dtype}")
    if not inputs.is_floating_point():
        raise ValueError(f"{name}: inputs must be a floating-point tensor, got {inputs.dtype}")
    if inputs.is_meta or labels.is_meta:
        raise ValueError(f"{name} is on the meta device: it holds no values to compute with")
    if labels.device != inputs.device:
        raise ValueError(f"{name}: labels are on {labels.device} but inputs on {inputs.device}")


@contextmanager
def eval_mode(model: Optional[nn.Module]) -> Iterator[None]:
    """Puts every submodule in eval mode for the block, then restores each one's mode."""
    modes = {module: module.training for module in model.modules()} if model is not None else {}
    if model is not None:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


@contextmanager
def preserved_rng(model: nn.Module) -> Iterator[None]:
    """Restores torch's global RNG state (the CPU's and that of the CUDA devices
    `model` is on) after the block: reading a DataLoader or a random layer
    draws from it, and a call of the library leaves the caller's stream as it was."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    devices = sorted({t.device.index or 0 for t in tensors if t.is_cuda})
    with torch.random.fork_rng(devices=devices):
        yield


@contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seeds torch's global RNG of the CPU (and of `device`, when a CUDA
    device) for the block and restores the caller's state afterwards: a
    DataLoader's shuffling and augmentation, and random layers, then draw the
    same numbers for the same seed."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def output_classes(model: nn.Module, sample: torch.Tensor, name: str) -> int:
    """Number of model outputs, from one forward pass on a single input."""
    try:
        with eval_mode(model), torch.no_grad():
            out = model(sample[:1])
    except RuntimeError as error:
        raise ValueError(f"{name}: the model cannot take inputs of shape {tuple(sample.shape[1:])}: {error}") from error
    if out.dim() != 2:
        raise ValueError(f"the model must return class scores of shape (batch, classes), got {tuple(out.shape)}")
    return out.shape[1]


def _class_index(value: Any) -> int:
    """An integer class index: a Python or NumPy int, or an integer 0-d tensor (not a bool)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"forget_classes must hold integer class indices, got {value!r} ({type(value).__name__})")
    return int(value)


def validate_classes(classes: Sequence[int], num_classes: Optional[int]) -> list[int]:
    """The sorted, distinct forget classes, each an existing class, not all of them."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, torch.Tensor, np.ndarray, set)):
        raise TypeError(f"forget_classes must be a sequence of class indices, got {type(classes).__name__}")
    out = sorted({_class_index(c) for c in classes})
    if not out:
        raise ValueError("forget_classes is empty")
    if num_classes is not None:
        bad = [c for c in out if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"forget_classes: {bad} do not exist (the model has classes 0..{num_classes - 1})")
        if len(out) == num_classes:
            raise ValueError("forget_classes: forgetting every class leaves nothing to keep")
    return out
