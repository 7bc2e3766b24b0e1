"""Small classifiers for the embedded digits (inputs 1 x 8 x 8, ten classes).
They train in seconds on a CPU, so the default model can be built on the
user's machine instead of downloaded."""

from __future__ import annotations

from torch import nn

CLASSES = 10


class LogisticRegression(nn.Sequential):
    """Multinomial logistic regression on the 64 pixels."""

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(64, CLASSES))


class MLP(nn.Sequential):
    """One hidden layer of 64 ReLU units."""

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, CLASSES))


def _convolutions(first: int, second: int) -> list[nn.Module]:
    """Two 3 x 3 convolutions (BatchNorm, ReLU), a 2 x 2 max-pool, flattened:
    1 x 8 x 8 in, second x 4 x 4 out."""
    return [
        nn.Conv2d(1, first, 3, padding=1),
        nn.BatchNorm2d(first),
        nn.ReLU(),
        nn.Conv2d(first, second, 3, padding=1),
        nn.BatchNorm2d(second),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]


class SmallCNN(nn.Sequential):
    """Two 3 x 3 convolutions with BatchNorm, one 2 x 2 max-pool, a linear head."""

    def __init__(self) -> None:
        super().__init__(*_convolutions(16, 32), nn.Linear(32 * 4 * 4, CLASSES))


class SmallVGG(nn.Sequential):
    """Two 3 x 3 convolutions with BatchNorm and a 2 x 2 max-pool, then a fully
    connected classifier with two hidden layers of 128 ReLU units and dropout
    0.5: the shape of the CIFAR VGG-11 that svd_projection was published on,
    whose hidden classifier units are what that method projects away."""

    def __init__(self) -> None:
        super().__init__(
            *_convolutions(32, 64),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, CLASSES),
        )


ARCHITECTURES: dict[str, type[nn.Module]] = {"logreg": LogisticRegression, "mlp": MLP, "cnn": SmallCNN, "vgg": SmallVGG}


def build(name: str) -> nn.Module:
    """A freshly initialised model by name: "logreg", "mlp", "cnn" or "vgg"."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name not in ARCHITECTURES:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name]()
