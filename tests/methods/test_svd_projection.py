"""svd_projection: the fast paths against their definitions, every layer kind,
residual networks, and class forgetting on the digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unlearn
from unlearn.methods import forget
from unlearn.methods.svd_projection import importance_basis, layer_patches, project_weight


def _projection(rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """M(alpha) from a plain SVD, as the paper writes it."""
    u, sigma, _ = torch.linalg.svd(rows.T, full_matrices=False)
    s = sigma**2 / (sigma**2).sum()
    return u @ torch.diag(alpha * s / ((alpha - 1) * s + 1)) @ u.T


@pytest.mark.parametrize("n, d", [(50, 12), (7, 30)])
def test_gram_eigh_gives_the_svd_importance_matrix(gen, n, d):
    rows = torch.randn(n, d, generator=gen, dtype=torch.float64)
    u, lam = importance_basis(rows, 100.0)
    torch.testing.assert_close(u @ torch.diag(lam) @ u.T, _projection(rows, 100.0), rtol=1e-8, atol=1e-10)


def test_low_rank_update_equals_the_explicit_projection(gen):
    d = 40
    retain = torch.randn(60, d, generator=gen, dtype=torch.float64)
    gone = torch.randn(25, d, generator=gen, dtype=torch.float64)
    w = torch.randn(9, d, generator=gen, dtype=torch.float64)
    m_r, m_f = _projection(retain, 100.0), _projection(gone, 3.0)
    p = torch.eye(d, dtype=torch.float64) - (m_f - m_f @ m_r)
    ours = project_weight(w, importance_basis(retain, 100.0), importance_basis(gone, 3.0))
    torch.testing.assert_close(ours, w @ p.T, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (nn.Conv2d(3, 5, 3, stride=2, padding=1, dilation=1), (2, 3, 9, 9)),
        (nn.Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1)), (2, 2, 8, 7)),
        (nn.Conv2d(2, 3, 3, padding="same"), (2, 2, 6, 6)),
        (nn.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 11)),
        (nn.Linear(6, 4), (2, 5, 6)),
    ],
)
def test_patches_are_what_the_weight_multiplies(gen, layer, shape):
    x = torch.randn(*shape, generator=gen)
    out = layer(x).detach()
    rows = layer_patches(layer, x)
    w = layer.weight.reshape(layer.weight.shape[0], -1)
    product = rows @ w.T + layer.bias
    if isinstance(layer, nn.Linear):
        expected = out.reshape(-1, out.shape[-1])
    else:
        expected = out.reshape(out.shape[0], out.shape[1], -1).transpose(1, 2).reshape(-1, out.shape[1])
    torch.testing.assert_close(product, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def digits():
    return unlearn.digits()


def _accuracy(model, inputs, labels) -> float:
    with torch.no_grad():
        return float((model(inputs).argmax(1) == labels).double().mean())


def _class_accuracies(model, split, c) -> tuple[float, float]:
    """Test accuracy on class c and on the other classes."""
    gone = split.labels == c
    return _accuracy(model, split.inputs[gone], split.labels[gone]), _accuracy(
        model, split.inputs[~gone], split.labels[~gone]
    )


def test_forgetting_a_digit_class_with_the_paper_defaults(digits):
    # The paper's setting: a VGG-style network whose classifier has fully
    # connected hidden layers, and its CIFAR-10 defaults.
    model = unlearn.train("vgg")
    train, test = digits.train, digits.test
    result = forget(model, "svd_projection", retain=(train.inputs, train.labels), forget_classes=[3], seed=0)
    before, after = _class_accuracies(model, test, 3), _class_accuracies(result.model, test, 3)
    assert before[0] >= 0.9
    assert after[0] <= 0.05
    assert after[1] >= before[1] - 0.05
    assert set(result.report["layers"]) == {"0", "3", "8", "11", "14"}
    again = forget(model, "svd_projection", retain=(train.inputs, train.labels), forget_classes=[3], seed=0)
    assert all(torch.equal(p, q) for p, q in zip(result.model.parameters(), again.model.parameters()))


def test_a_network_without_hidden_classifier_units_forgets_only_part_of_a_class(digits):
    # The small CNN feeds flattened convolution maps straight to its output
    # layer: the forget class's activations there lie mostly in the space
    # the other classes span, so the same defaults remove only part of it.
    model = unlearn.train("cnn")
    train, test = digits.train, digits.test
    result = forget(model, "svd_projection", retain=(train.inputs, train.labels), forget_classes=[3], seed=0)
    before, after = _class_accuracies(model, test, 3), _class_accuracies(result.model, test, 3)
    assert before[0] - 0.5 <= after[0] <= before[0] - 0.15
    assert after[1] >= before[1] - 0.05


def test_several_classes_at_once_all_leave(digits):
    model = unlearn.train("cnn")
    train = digits.train
    one = forget(model, "svd_projection", retain=(train.inputs, train.labels), forget_classes=[3], alpha_r=3.0)
    two = forget(model, "svd_projection", retain=(train.inputs, train.labels), forget_classes=[3, 5], alpha_r=3.0)
    five = train.labels == 5
    assert (
        _accuracy(two.model, train.inputs[five], train.labels[five])
        < _accuracy(one.model, train.inputs[five], train.labels[five]) - 0.3
    )


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        self.reduce = nn.Conv2d(c_in, width, 1, bias=False)
        self.conv = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.expand = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn = nn.BatchNorm2d(4 * width)
        self.downsample = nn.Conv2d(c_in, 4 * width, 1, stride, bias=False)

    def forward(self, x):
        return torch.relu(self.bn(self.expand(torch.relu(self.conv(torch.relu(self.reduce(x)))))) + self.downsample(x))


def _net(kind: str) -> nn.Module:
    blocks = {
        "basic": [BasicBlock(8, 8, 1), BasicBlock(8, 16, 2)],
        "bottleneck": [Bottleneck(8, 4, 1), Bottleneck(16, 4, 2)],
        "vgg": [
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        ],
    }[kind]
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)
    )


@pytest.mark.parametrize("kind", ["basic", "bottleneck", "vgg"])
def test_residual_and_vgg_networks(gen, kind):
    torch.manual_seed(0)
    model = _net(kind).eval()
    x = torch.randn(80, 1, 8, 8, generator=gen)
    y = torch.arange(80) % 4
    result = forget(model, "svd_projection", retain=(x, y), forget_classes=[1], samples=40, max_patches=500)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert set(result.report["layers"]) == set(layers)
    changed = dict(result.model.named_parameters())
    for name, p in model.named_parameters():
        assert changed[name].shape == p.shape
        if name.endswith("weight") and name.rsplit(".", 1)[0] in layers:
            assert not torch.equal(changed[name], p), name
        else:
            assert torch.equal(changed[name], p), name  # biases and BatchNorm untouched


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(forget_classes=list(range(10))), "forgetting every class"),
        (dict(forget_classes=[12]), "do not exist"),
        (dict(forget_classes=[3], alpha_r=-1.0), "alpha_r must be > 0"),
        (dict(forget_classes=[3], samples=0), "samples must be >= 1"),
        (dict(forget=None, forget_classes=None), "forgets whole classes"),
    ],
)
def test_bad_requests(digits, kwargs, match):
    model = unlearn.train("cnn")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    data = dict(retain=(digits.train.inputs, digits.train.labels))
    if kwargs.get("forget_classes", 0) is None:
        data["forget"] = (digits.train.inputs[:5], digits.train.labels[:5])
        kwargs = {}
    with pytest.raises(ValueError, match=match):
        forget(model, "svd_projection", **data, **kwargs)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_a_model_without_layers_to_project():
    model = nn.Sequential(nn.Flatten(), nn.Softmax(dim=1))
    x = torch.randn(20, 4)
    with pytest.raises(ValueError, match="no Conv1d, Conv2d or Linear layer"):
        forget(model, "svd_projection", retain=(x, torch.arange(20) % 4), forget_classes=[1])
