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
from torch.utils.data import DataLoader

Data = Union[DataLoader, Sequence[torch.Tensor], "Split"]


@dataclass
class Split:
    """Inputs and integer labels of one part of a request, on the model's device."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield self.inputs[start : start + size], self.labels[start : start + size]


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


def as_split(data: Optional[Data], name: str, model: Optional[nn.Module] = None) -> Optional[Split]:
    """Turns a DataLoader or an (inputs, labels) pair into a validated Split
    (on `model`'s device, when a model is given)."""
    if data is None:
        return None
    if isinstance(data, DataLoader):
        parts = [batch_pair(batch, name) for batch in data]
        if not parts:
            raise ValueError(f"{name} is empty: the DataLoader yielded no batches")
        inputs = torch.cat([p[0] for p in parts])
        labels = torch.cat([torch.as_tensor(p[1]) for p in parts])
    elif isinstance(data, Split):
        inputs, labels = data.inputs, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, labels = data
    else:
        raise TypeError(
            f"{name} must be a DataLoader, a Split or an (inputs, labels) pair of tensors, got {type(data).__name__}"
        )
    if labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"{name}: labels must be a 1-D tensor with one label per input, got inputs {tuple(inputs.shape)} "
            f"and labels {tuple(labels.shape)}"
        )
    if len(labels) == 0:
        raise ValueError(f"{name} is empty: there is nothing to {'forget' if name == 'forget' else 'use'}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"{name}: labels must be integer class indices, got {labels.dtype}")
    if not inputs.is_floating_point():
        raise ValueError(f"{name}: inputs must be a floating-point tensor, got {inputs.dtype}")
    if inputs.is_meta or labels.is_meta:
        raise ValueError(f"{name} is on the meta device: it holds no values to compute with")
    if labels.device != inputs.device:
        raise ValueError(f"{name}: labels are on {labels.device} but inputs on {inputs.device}")
    device = inputs.device if model is None else model_device(model)
    if inputs.device != device:
        raise ValueError(f"{name} is on {inputs.device} but the model is on {device}: move one of them first")
    return Split(inputs, labels.long())


def check_fits(split: Split, name: str, model: nn.Module, num_classes: int) -> None:
    """The model takes the split's inputs and its labels are among the outputs."""
    output_classes(model, split.inputs, name)
    low, high = int(split.labels.min()), int(split.labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name}: labels must lie in 0..{num_classes - 1} (the model has {num_classes} outputs), got {low}..{high}"
        )


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


def class_request(
    forget: Optional[Split], retain: Optional[Split], forget_classes: list[int]
) -> tuple[Optional[Split], Optional[Split]]:
    """The (forget, retain) samples of a class request: samples of
    `forget_classes` found in `retain` move to the forget side, so a caller may
    pass all its data as `retain`. Given `forget` samples must belong to the
    forget classes. Either side is None when it has no samples."""
    classes = torch.tensor(forget_classes)
    if forget is not None:
        stray = ~torch.isin(forget.labels, classes.to(forget.labels.device))
        if bool(stray.any()):
            raise ValueError(
                f"forget: samples of classes {sorted(set(forget.labels[stray].tolist()))} are not among "
                f"forget_classes {forget_classes}"
            )
    parts = [forget] if forget is not None else []
    kept = None
    if retain is not None:
        moving = torch.isin(retain.labels, classes.to(retain.labels.device))
        if bool(moving.any()):
            parts.append(Split(retain.inputs[moving], retain.labels[moving]))
        if not bool(moving.all()):
            kept = Split(retain.inputs[~moving], retain.labels[~moving])
    merged = None
    if parts:
        merged = Split(torch.cat([p.inputs for p in parts]), torch.cat([p.labels for p in parts]))
    return merged, kept
