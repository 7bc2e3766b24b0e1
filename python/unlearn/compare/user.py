"""A user's model and data for a comparison, from the functions that build
them: the model from a factory and a file of weights, the data from a
function returning torch Datasets of (input, label) pairs."""

from __future__ import annotations

import pickle
from typing import Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._core import READ_BATCH, Split, as_split, check_model, materialise
from .display import Path


def user_model(factory: Callable[[], nn.Module], weights: Optional[Path] = None) -> nn.Module:
    """The model `factory()` builds, in eval mode, with the state dict saved in
    `weights` loaded into it (read by `torch.load(weights_only=True)`, which
    runs no code from the file, onto the CPU)."""
    model = factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"the model factory must return a torch.nn.Module, got {type(model).__name__}")
    if weights is not None:
        _load_into(model, _state_dict(weights), weights)
    return check_model(model).eval()


def _state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """The state dict in the file `weights`; ValueError naming `weights` when
    the file is missing or holds something else."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise ValueError(f"weights: no such file {str(weights)!r}") from error
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"weights: {str(weights)!r} is not a file of weights torch.load can read: {first}") from error
    if not isinstance(state, dict):
        raise ValueError(f"weights: {str(weights)!r} holds a {type(state).__name__}, not a state dict")
    return state


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], weights: Path) -> None:
    """Loads `state` into `model`; ValueError naming `weights` when they do not fit."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise ValueError(
            f"weights: {str(weights)!r} does not fit the model: {' '.join(lines[1:2] or lines)}"
        ) from error


def user_data(loader: Callable[[], tuple[Dataset, Dataset]]) -> tuple[Split, Split]:
    """The (train, test) Datasets `loader()` returns, each read whole into a
    Split (every item an (input, label) pair, collated by a DataLoader): the
    command line hands the user's retraining function tensors. (The Python
    API, `unlearn.compare`, reads DataLoaders batch by batch instead.)"""
    out = loader()
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"the data loader must return (train_dataset, test_dataset), got {type(out).__name__}")
    return _read(out[0], "train"), _read(out[1], "test")


def _read(dataset: Dataset, name: str) -> Split:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"the data loader's {name} dataset must be a torch Dataset, got {type(dataset).__name__}")
    return materialise(as_split(DataLoader(dataset, batch_size=READ_BATCH), f"{name} dataset"))
