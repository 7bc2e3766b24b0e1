"""A model, data and training function of your own, for `unlearn compare`.

Run from this folder:

    python my_model.py          # trains the model and saves its weights to w.pt
    unlearn compare --model my_model:build --weights w.pt --data my_model:load_data \\
        --retrain my_model:train --methods finetune,ssd --forget-samples 10

The data are scikit-learn's handwritten digits, which ship with it (no download).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

EPOCHS, BATCH, LR = 10, 64, 0.01


def build() -> nn.Module:
    """The model, untrained: 64 pixels in, 10 digit scores out."""
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def load_data() -> tuple[TensorDataset, TensorDataset]:
    """(train, test) datasets of (pixels, digit) pairs: every fifth image is held out for testing."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    inputs = torch.tensor(digits.data, dtype=torch.float32) / 16
    labels = torch.tensor(digits.target, dtype=torch.int64)
    test = torch.arange(len(labels)) % 5 == 0
    return TensorDataset(inputs[~test], labels[~test]), TensorDataset(inputs[test], labels[test])


def train(data: tuple[torch.Tensor, torch.Tensor], seed: int = 0) -> nn.Module:
    """A model trained from scratch on `data`, an (inputs, labels) pair, with
    Adam and weight decay; the same seed gives the same model."""
    inputs, labels = data
    torch.manual_seed(seed)
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=5e-4)
    order = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(labels), generator=order).split(BATCH):
            loss = nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


if __name__ == "__main__":
    train_set, test_set = load_data()
    model = train(train_set.tensors)
    accuracy = (model(test_set.tensors[0]).argmax(1) == test_set.tensors[1]).float().mean()
    torch.save(model.state_dict(), "w.pt")
    print(f"saved w.pt (test accuracy {accuracy:.3f})")
