"""The embedded default data set: scikit-learn's handwritten digits (1797
images of 8 x 8 pixels, ten classes), shipped inside scikit-learn so nothing
is downloaded. The train/test split is fixed: the same on every call and every
machine, so cached models and benchmark numbers stay comparable."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ._core import Split

TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class Digits:
    """The fixed split of the digits: `train` and `test` Splits (inputs
    float32 N x 1 x 8 x 8 in [0, 1], labels int64), `classes` = 10, and a
    `fingerprint` of the training data (keys cached models)."""

    train: Split
    test: Split
    classes: int
    fingerprint: str


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "the digits data set ships with scikit-learn, which is not installed: pip install 'torch-unlearn[data]'"
        ) from error
    bunch = load_digits()
    pixels = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)  # pixel values are 0..16
    return pixels, bunch.target.astype(np.int64)


def _stratified_test_mask(labels: torch.Tensor) -> torch.Tensor:
    """Marks TEST_FRACTION of every class (rounded) as test, chosen by a
    generator seeded with SPLIT_SEED."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: round(TEST_FRACTION * len(members))]]
        mask[chosen] = True
    return mask


def fingerprint(split: Split) -> str:
    """A digest of a Split's inputs and labels (keys models cached by the data they were trained on)."""
    digest = hashlib.sha256()
    digest.update(split.inputs.detach().cpu().contiguous().numpy().tobytes())
    digest.update(split.labels.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def digits() -> Digits:
    """scikit-learn's handwritten digits with a fixed stratified 75/25
    train/test split (fresh tensors on every call, on the CPU)."""
    pixels, targets = _load()
    inputs, labels = torch.from_numpy(pixels.copy()), torch.from_numpy(targets.copy())
    test = _stratified_test_mask(labels)
    train_split = Split(inputs[~test], labels[~test])
    return Digits(
        train=train_split,
        test=Split(inputs[test], labels[test]),
        classes=10,
        fingerprint=fingerprint(train_split),
    )
