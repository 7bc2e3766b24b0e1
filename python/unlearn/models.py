"""Small classifiers for the embedded digits (inputs 1 x 8 x 8, ten classes).
They train in seconds on a CPU, so the default model can be built on the
user's machine instead of downloaded. Also the CIFAR ResNet-18, for
experiments on image-sized inputs (not one of the digits `ARCHITECTURES`)."""

from __future__ import annotations

import torch
from torch import nn

from ._core import PositiveInt, check_option

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


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with BatchNorm and a residual connection, the
    shortcut a strided 1 x 1 convolution with BatchNorm where the shape changes."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """The CIFAR ResNet-18 (He et al. 2016, as commonly adapted to 32 x 32
    inputs): a 3 x 3 stride-1 stem without max-pool, four stages of two
    BasicBlocks of `width`, 2, 4 and 8 times `width` channels (strides 1, 2,
    2, 2), global average pooling and a linear head; 11,173,962 parameters at
    the standard width 64 and 10 classes."""

    def __init__(self, classes: int = 10, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        for name, value in (("classes", classes), ("in_channels", in_channels), ("width", width)):
            check_option(name, value, PositiveInt)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for stage, stride in enumerate((1, 2, 2, 2)):
            out = width * 2**stage
            stages.append(nn.Sequential(BasicBlock(channels, out, stride), BasicBlock(out, out, 1)))
            channels = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(channels, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled 8 * `width` channels the linear head reads."""
        out = torch.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(out)))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


class MNIST1DCNN(nn.Sequential):
    """The convolutional baseline of MNIST-1D (Greydanus, 2020): three 1-D
    convolutions of `channels` filters (kernel 5, then 3, stride 2), ReLU, a
    linear head; no BatchNorm. Inputs N x 1 x 40."""

    def __init__(self, classes: int = 10, channels: int = 25) -> None:
        for name, value in (("classes", classes), ("channels", channels)):
            check_option(name, value, PositiveInt)
        super().__init__(
            nn.Conv1d(1, channels, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * 5, classes),
        )


ARCHITECTURES: dict[str, type[nn.Module]] = {"logreg": LogisticRegression, "mlp": MLP, "cnn": SmallCNN, "vgg": SmallVGG}


def build(name: str) -> nn.Module:
    """A freshly initialised model by name: "logreg", "mlp", "cnn" or "vgg"."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name not in ARCHITECTURES:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in ARCHITECTURES)}, got {name!r}")
    return ARCHITECTURES[name]()
