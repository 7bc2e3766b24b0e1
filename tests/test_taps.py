"""Per-sample gradients from layer taps against torch.func's per-sample
differentiation of the whole model, on the layers the taps take (Linear on
matrices and sequences, Conv1d, Conv2d with stride, dilation, groups, no
bias) and on those they must leave to torch.func: layers they cannot take,
and models where a tap would give a wrong answer (a first dimension that is
not the batch, weights used elsewhere or computed from other parameters, a
layer run without gradients, inputs changed in place, training mode)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, jacrev, vmap

from unlearn import Split, curvature, models
from unlearn.models import MNIST1DCNN, ResNet18
from unlearn.taps import Taps, each_class, sample_bytes, tapped_rows
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
    """A Linear layer applied at every position of a sequence (the batch first)."""

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


class _Folded(_Sequence):
    """Tokens folded into the batch for a Linear layer: its first dimension is not the samples."""

    def forward(self, x):
        return self.head(torch.tanh(self.mix(x.reshape(-1, 6))).view(len(x), 8, 12).mean(1))


class _SequenceFirst(_Sequence):
    """A (positions, batch, features) layout; with as many positions as samples the shapes agree."""

    def forward(self, x):
        return self.head(torch.tanh(self.mix(x.transpose(0, 1))).mean(0))


class _Prototypes(nn.Module):
    """Logits against projected class embeddings: the projection's rows are classes, not samples."""

    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(8, 6)
        self.project = nn.Linear(6, 6)
        self.classes = nn.Parameter(torch.randn(10, 6))

    def forward(self, x):
        return torch.tanh(self.encode(x)) @ self.project(self.classes).T


class _Tied(nn.Module):
    """A decoder that reuses the encoder's weight outside its layer."""

    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(8, 4)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(F.linear(torch.tanh(self.encode(x)), self.encode.weight.t()))


class _Frozen(nn.Module):
    """A layer run without gradients inside the forward."""

    def __init__(self):
        super().__init__()
        self.features = nn.Linear(8, 6)
        self.head = nn.Linear(6, 10)

    def forward(self, x):
        with torch.no_grad():
            h = self.features(x)
        return self.head(torch.tanh(h))


def _reparametrised(wrap: str) -> nn.Module:
    """A Linear layer whose weight is computed from other parameters (the
    module keeps its type, its parameters are not (weight, bias))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = getattr(nn.utils, wrap)(nn.Linear(8, 6))
    return nn.Sequential(layer, nn.Tanh(), nn.Linear(6, 10))


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
    "tokens folded into the batch": (_Folded, (48,), lambda u: [0, 5, 12], False),
    "positions first": (_SequenceFirst, (5, 6), lambda u: [0, 5], False),  # 5 positions, 5 samples
    "class embeddings": (_Prototypes, (8,), lambda u: [1, 7, 9], False),
    "tied weight": (_Tied, (8,), lambda u: [0, 3], False),
    "layer without gradients": (_Frozen, (8,), lambda u: [0, 3, 7], False),
    "spectral_norm": (lambda: _reparametrised("spectral_norm"), (8,), lambda u: [0, 3], False),
    "weight_norm": (lambda: _reparametrised("weight_norm"), (8,), lambda u: [0, 3], False),
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
    assert forward(v, x).shape == (5, 10)
    assert (tapped_rows(model, selection, x, each_class) is not None) == taken
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


class _ChangedInput(nn.Module):
    """The selected layer's input is changed in place after the layer ran."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        h = x * 1.0
        h += torch.tanh(self.inner(h))
        return self.head(h)


def test_an_input_changed_in_place_is_not_tapped(gen):
    """torch.func refuses this model too (autograd needs the input as it was)."""
    model = _ChangedInput().double().eval()
    selection = Selection.from_columns(Units(model), [0, 3])
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    assert tapped_rows(model, selection, x, each_class) is None
    with pytest.raises(RuntimeError, match="inplace"):
        curvature.logit_jacobians(model, selection, x)


def test_a_model_in_training_mode_is_not_tapped_nor_changed(gen):
    model = models.build("cnn").double().train()
    selection = Selection.from_columns(Units(model), [0, 5])
    before = {name: b.clone() for name, b in model.named_buffers()}
    x = torch.randn(6, 1, 8, 8, generator=gen, dtype=torch.float64)
    assert tapped_rows(model, selection, x, each_class) is None
    assert all(torch.equal(b, before[name]) for name, b in model.named_buffers())  # running statistics untouched
    assert all(p.requires_grad for p in model.parameters())  # and the parameters as they were


class _Failing(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        self.head(x)
        raise ValueError("the model's own error")


def test_a_failing_forward_leaves_no_hook_and_the_parameters_as_they_were(gen):
    model = _Failing().eval()
    model.head.weight.requires_grad_(False)
    selection = Selection.from_columns(Units(model), [1])
    with pytest.raises(ValueError, match="the model's own error"):
        tapped_rows(model, selection, torch.randn(3, 8, generator=gen), each_class)
    assert not model.head._forward_hooks
    assert not model.head.weight.requires_grad and model.head.bias.requires_grad


def test_inside_the_taps_the_selected_parameters_alone_record_and_all_are_restored_after():
    model = models.build("cnn").eval()
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    units = Units(model)
    selection = Selection.from_columns(units, [units.columns - 1])
    chosen = {name for name, _ in selection.parameters()}
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    with Taps(model, selection):
        assert {name for name, p in model.named_parameters() if p.requires_grad} == chosen
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before


def test_sample_bytes_count_the_graph_from_the_first_selected_layer_and_grow_with_the_weightings(gen):
    model = models.build("cnn").double().train()
    units = Units(model)
    x = torch.randn(4, 1, 8, 8, generator=gen, dtype=torch.float64)
    first = Selection.from_columns(units, [0])
    head = Selection.from_columns(units, [units.columns - 1])
    states = {name: b.clone() for name, b in model.named_buffers()}
    assert sample_bytes(model, first, x, 1) > sample_bytes(model, head, x, 1) > 0
    one, two, three = (sample_bytes(model, first, x, r) for r in (1, 2, 3))
    assert two > one and three - one == 2 * (two - one)  # the graph once, its gradients R times
    assert sample_bytes(model, first, x, None) == sample_bytes(model, first, x, 10)  # one weighting a class
    assert all(m.training for m in model.modules())  # modes as they were
    assert all(torch.equal(b, states[name]) for name, b in model.named_buffers())  # no statistics updated


class _OwnConv(nn.Conv2d):
    """A Conv2d subclass: the taps take only the exact layer types."""


def _padded(conv_type):
    torch.manual_seed(0)
    return nn.Sequential(conv_type(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 10)).double().eval()


def test_sample_bytes_count_torch_funcs_whole_parameter_gradients_where_the_taps_cannot_go(gen):
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=torch.float64)
    tapped, fallback = _padded(nn.Conv2d), _padded(_OwnConv)
    selection = Selection.from_columns(Units(tapped), [1])
    whole = 10 * (4 * 9 + 4) * 8  # ten weightings, the conv's weight and bias gradients in float64
    patches, given = 9 * 64 * 8, 64 * 8  # the unfolded input the tapped layer is counted with, the input alone
    difference = sample_bytes(fallback, selection, x, 10) - sample_bytes(tapped, selection, x, 10)
    assert difference == whole - patches + given
    assert tapped_rows(fallback, selection, x, each_class) is None  # it does take torch.func's route
    summed = [sample_bytes(model, selection, x, 1, per_sample=False) for model in (tapped, fallback)]
    assert summed[0] == summed[1] < sample_bytes(tapped, selection, x, 1)  # a summed gradient: the graph alone


def _wide(variant: str) -> nn.Module:
    """Three Linear layers, the middle one plain, holding the first one's
    weight, or weight-normed."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 10))
    if variant == "shared":
        model[2].weight = model[0].weight
    elif variant == "weight_norm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nn.utils.weight_norm(model[2])
    return model.double().eval()


@pytest.mark.parametrize("variant", ["shared", "weight_norm"])
def test_sample_bytes_foresee_torch_func_for_weights_shared_or_reparametrised(gen, variant):
    """A layer whose weight another layer holds too, or that is computed from
    other parameters, goes to torch.func: the estimate counts its whole
    per-sample parameter gradients before any pass is made."""
    x = torch.randn(2, 256, generator=gen, dtype=torch.float64)
    plain, other = _wide("plain"), _wide(variant)
    chosen = [Selection.from_columns(Units(model), [256]) for model in (plain, other)]  # a middle-layer unit
    whole = 10 * sum(p.numel() for _, p in other[2].named_parameters()) * 8  # ten weightings, float64
    assert tapped_rows(other, chosen[1], x, each_class) is None
    assert sample_bytes(plain, chosen[0], x, 10) < whole <= sample_bytes(other, chosen[1], x, 10)


class _Shared(nn.Module):
    """Two Linear layers that hold one weight tensor."""

    def __init__(self):
        super().__init__()
        self.first, self.second, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 10)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.head(torch.tanh(self.second(torch.tanh(self.first(x)))))


def test_a_weight_two_selected_layers_hold_is_one_block_with_its_whole_gradient(gen):
    torch.manual_seed(0)
    model = _Shared().double().eval()
    units = Units(model)
    selection = Selection.from_columns(units, [0, 3, 11, units.columns - 1])  # units 0, 3 of first, 3 of second
    blocks = selection.parameters()
    assert [name for name, _ in blocks] == ["first.weight", "first.bias", "second.bias", "head.weight", "head.bias"]
    assert blocks[0][1].tolist() == [0, 3] and blocks[2][1].tolist() == [3]
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (5,), generator=gen)
    ours = curvature.per_sample_gradients(model, selection, Split(x, y))
    for i in range(len(x)):  # autograd sums the shared tensor's gradient over both of its uses
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        expected = selection.gather({name: p.grad for name, p in model.named_parameters()})
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=1e-12)


def test_a_selection_follows_parameters_replaced_after_its_units_were_built():
    """load_state_dict(assign=True) puts new tensors in the model (the old ones
    are freed and their ids may be reused): the selection still names every
    selected parameter once."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    units = Units(model)
    selection = Selection.from_columns(units, list(range(units.columns)))
    names = [name for name, _ in model.named_parameters()]
    for _ in range(5):
        model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, assign=True)
        assert [name for name, _ in selection.parameters()] == names
        assert selection.size(model) == sum(p.numel() for p in model.parameters()) == 47


def test_sample_bytes_foresee_torch_func_for_a_weight_used_outside_its_layer(gen):
    """A decoder that reuses the encoder's weight outside the encoder's forward:
    the taps would miss that use (their confirmation then sends the layer to
    torch.func), and the estimate counts torch.func's whole gradients."""
    torch.manual_seed(0)
    tied = _Tied().double().eval()
    plain = nn.Sequential(nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 8), nn.Linear(8, 10)).double().eval()
    x = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    tied_choice, plain_choice = (Selection.from_columns(Units(m), [0]) for m in (tied, plain))  # a unit of the encoder
    whole = 10 * (8 * 4 + 4) * 8  # ten weightings, the encoder's weight and bias in float64
    assert tapped_rows(tied, tied_choice, x, each_class) is None
    assert sample_bytes(tied, tied_choice, x, 10) - sample_bytes(plain, plain_choice, x, 10) >= whole - 10 * 8 * 8
