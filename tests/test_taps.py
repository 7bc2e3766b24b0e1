"""Per-sample gradients from layer taps against torch.func's per-sample
differentiation of the whole model, on the layers the taps take (Linear on
matrices and sequences, Conv1d, Conv2d with stride, dilation, groups, no
bias) and on those they leave to torch.func."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, jacrev, vmap

from unlearn import Split, curvature, models
from unlearn.models import MNIST1DCNN, ResNet18
from unlearn.taps import tapped_rows
from unlearn.units import Selection, Units


class _Convolutions(nn.Module):
    """A strided, dilated and a grouped convolution, one without bias."""

    def __init__(self):
        super().__init__()
        self.strided = nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.tanh(self.grouped(torch.tanh(self.strided(x)))).mean((2, 3)))


class _Sequence(nn.Module):
    """A Linear layer applied at every position of a sequence."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(6, 12)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        return self.head(torch.tanh(self.mix(x.view(len(x), 8, 6))).mean(1))


class _Reflect(nn.Module):
    """A reflect-padded convolution: the taps leave it to torch.func."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


class _Twice(nn.Module):
    """One convolution called twice a forward: the taps leave it to torch.func."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3, 10)

    def forward(self, x):
        return self.head(self.conv(torch.relu(self.conv(x))).mean((2, 3)))


CASES = {
    # name: (model, input shape, units picked by index into Units' columns, whether the taps take it)
    "mlp": (lambda: models.build("mlp"), (1, 8, 8), lambda u: [0, 3, u.columns - 2, u.columns - 1], True),
    "cnn": (lambda: models.build("cnn"), (1, 8, 8), lambda u: [0, 5, 20, u.columns - 1], True),
    "resnet": (lambda: ResNet18(width=4), (3, 16, 16), lambda u: [0, 9, 60, 61, u.columns - 30, u.columns - 1], True),
    "conv1d": (lambda: MNIST1DCNN(channels=6), (1, 40), lambda u: [0, 7, 15, u.columns - 1], True),
    "strided, grouped": (_Convolutions, (3, 9, 9), lambda u: [1, 8, 9, 14, 15, u.columns - 1], True),
    "sequence": (_Sequence, (48,), lambda u: [0, 5, 11, 12, u.columns - 1], True),
    "reflect padding": (_Reflect, (3, 6, 6), lambda u: [1, 4], False),
    "called twice": (_Twice, (3, 6, 6), lambda u: [1, 3], False),
}


def _model(case):
    build, shape, pick, taken = CASES[case]
    torch.manual_seed(0)
    model = build().double().eval()
    return model, shape, Selection.from_columns(Units(model), pick(Units(model))), taken


@pytest.mark.parametrize("case", CASES)
def test_logit_jacobians_match_torch_func(gen, case):
    model, shape, selection, taken = _model(case)
    x = torch.randn(5, *shape, generator=gen, dtype=torch.float64)
    forward, v = curvature.restricted_forward(model, selection)
    expected = vmap(jacrev(lambda v, x: forward(v, x[None])[0]), in_dims=(None, 0))(v, x)
    eye = lambda logits: torch.eye(10, dtype=logits.dtype)[:, None, :].expand(-1, len(logits), -1)  # noqa: E731
    assert (tapped_rows(model, selection, x, eye) is not None) == taken
    assert all(not m._forward_hooks for m in model.modules())  # no hook stays behind
    logits, jacobians = curvature.logit_jacobians(model, selection, x)
    torch.testing.assert_close(logits, forward(v, x), rtol=0, atol=1e-12)
    assert jacobians.shape == (5, 10, selection.size(model))
    torch.testing.assert_close(jacobians, expected, rtol=0, atol=1e-10 * float(expected.abs().max()))


@pytest.mark.parametrize("case", CASES)
def test_per_sample_gradients_match_torch_func(gen, case):
    model, shape, selection, _ = _model(case)
    x = torch.randn(7, *shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (7,), generator=gen)
    forward, v = curvature.restricted_forward(model, selection)
    one = vmap(grad(lambda v, x, y: F.cross_entropy(forward(v, x[None]), y[None])), in_dims=(None, 0, 0))
    expected = one(v, x, y)
    ours = curvature.per_sample_gradients(model, selection, Split(x, y), batch_size=3)  # batches of 3, 3, 1
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-10 * float(expected.abs().max()))
