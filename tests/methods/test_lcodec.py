"""L-CODEC end to end: the Newton step on a convex model, the method on the
digits models and on a ResNet-18 fitted to zero training loss, determinism,
and bad requests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unlearn
from unlearn import curvature, ops
from unlearn._core import Split
from unlearn.evaluation import evaluate
from unlearn.methods import forget
from unlearn.methods.lcodec import log_odds
from unlearn.models import LogisticRegression, ResNet18
from unlearn.training import TRAINING_DEFAULTS
from unlearn.units import Selection, Units

L2 = 0.01


@pytest.fixture(scope="module")
def digits():
    return unlearn.digits()


def _split(train: Split, drop: torch.Tensor):
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[drop] = False
    return (train.inputs[drop], train.labels[drop]), (train.inputs[keep], train.labels[keep])


@pytest.fixture(scope="module")
def convex(digits):
    """Logistic regression at the optimum of mean CE + L2/2 ||w||^2 (float64)."""
    torch.manual_seed(0)
    model = LogisticRegression().double()
    x, y = digits.train.inputs.double(), digits.train.labels
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + L2 / 2 * sum((p**2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return model, (x, y)


def test_block_solve_over_all_parameters_matches_dense_solve(convex):
    model, (x, y) = convex
    units = Units(model)
    everything = Selection.from_columns(units, list(range(units.columns)))
    hessian = curvature.exact_hessian(model, everything, Split(x, y))
    g = curvature.mean_gradient(model, everything, Split(x[:20], y[:20]))
    ours = torch.ops.unlearn.block_solve([hessian], g, L2, [False])
    dense = torch.linalg.solve(hessian + L2 * torch.eye(len(g), dtype=torch.float64), g)
    assert float((ours - dense).abs().max()) < 1e-6


@pytest.mark.parametrize("gradient", ["forget", "retain"])
def test_newton_removal_step_cuts_the_residual(convex, gradient):
    model, (x, y) = convex
    drop = torch.arange(0, 100, 10)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[drop] = False
    fs, rs = (x[drop], y[drop]), (x[keep], y[keep])
    before = evaluate(model, forget=fs, retain=rs, test=rs, attacks=False, l2=L2)["grad_residual"]
    result = forget(
        model,
        "lcodec",
        forget=fs,
        retain=rs,
        selection="all",
        curvature="exact",
        gradient=gradient,
        noise=False,
        l2=L2,
        curvature_samples=len(rs[1]),
    )
    after = evaluate(result.model, forget=fs, retain=rs, test=rs, attacks=False, l2=L2)["grad_residual"]
    assert after < 0.1 * before, (before, after)


DIGITS_OPTIONS = dict(noise=False, l2=TRAINING_DEFAULTS["weight_decay"], damping=0.1)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_lcodec_on_digits_lowers_the_residual_more_than_random_blocks(digits, arch):
    model = unlearn.train(arch)
    fs, rs = _split(digits.train, torch.arange(10))
    test = (digits.test.inputs, digits.test.labels)
    l2 = DIGITS_OPTIONS["l2"]
    base = evaluate(model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    ours = forget(model, "lcodec", forget=fs, retain=rs, seed=0, **DIGITS_OPTIONS)
    rand = forget(model, "lcodec", forget=fs, retain=rs, seed=0, selection="random", **DIGITS_OPTIONS)
    after = evaluate(ours.model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    after_random = evaluate(rand.model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    assert after["grad_residual"] < base["grad_residual"]
    assert after["grad_residual"] < after_random["grad_residual"]
    assert abs(after["acc_test"] - base["acc_test"]) <= 0.02
    assert ours.report["selected_params"] > 0 and ours.report["step_norm"] > 0


def test_same_seed_same_result_and_report(digits):
    model = unlearn.train("mlp")
    fs, rs = _split(digits.train, torch.arange(3))
    a = forget(model, "lcodec", forget=fs, retain=rs, seed=4, perturbations=200)
    b = forget(model, "lcodec", forget=fs, retain=rs, seed=4, perturbations=200)
    c = forget(model, "lcodec", forget=fs, retain=rs, seed=5, perturbations=200)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))
    report = a.report
    assert report["noise_scale"] > 0 and report["selected_blocks"] and report["timings"]["select"] >= 0
    assert a.seconds > 0


def test_inplace_changes_the_callers_model_only_on_success(digits):
    model = unlearn.train("mlp")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    fs, rs = _split(digits.train, torch.arange(2))
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=100, noise=False)
    assert result.model is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=100, noise=False, inplace=True)
    assert result.model is model
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in original.items())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d, fs, rs: dict(forget=(fs[0][:0], fs[1][:0]), retain=rs), "forget is empty"),
        (lambda d, fs, rs: dict(forget=(fs[0], fs[1] + 20), retain=rs), "labels must lie in 0..9"),
        (lambda d, fs, rs: dict(forget=(fs[0].flatten(1)[:, :50], fs[1]), retain=rs), "cannot take inputs"),
        (
            lambda d, fs, rs: dict(forget=(fs[0].to("meta"), fs[1].to("meta")), retain=rs),
            "forget is on the meta device",
        ),
        (lambda d, fs, rs: dict(forget=fs, retain=None), "retain"),
        (lambda d, fs, rs: dict(forget=fs, retain=rs, curvature="fd"), "checkpoints"),
        (lambda d, fs, rs: dict(forget=fs, retain=rs, selection="best"), "selection"),
        (lambda d, fs, rs: dict(forget=fs, retain=rs, sigma=0.0), "sigma"),
        (lambda d, fs, rs: dict(forget_classes=[3], retain=rs), "forgets samples, not classes"),
    ],
)
def test_bad_requests_raise_and_leave_the_model_unchanged(digits, make, match):
    model = unlearn.train("cnn")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    fs, rs = _split(digits.train, torch.arange(3))
    with pytest.raises(ValueError, match=match):
        forget(model, "lcodec", inplace=True, **make(digits, fs, rs))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(ValueError, match="lcodec"):
        forget(torch.nn.Linear(2, 2), "nope", forget=(torch.randn(2, 2), torch.tensor([0, 1])))


def test_forget_keeps_the_callers_module_modes(digits):
    model = unlearn.train("cnn")
    model.train()
    norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    norm.eval()  # a frozen BatchNorm inside a model in training mode
    fs, rs = _split(digits.train, torch.arange(2))
    forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise=False)
    evaluate(model, forget=fs, retain=rs, test=rs, attacks=False)
    assert model.training and not norm.training
    model.eval()


def test_log_odds_ranks_like_the_loss_where_the_loss_rounds_to_zero():
    logits = torch.tensor([[2.0, 1.0, -1.0], [0.0, 3.0, 1.0], [50.0, 0.0, 1.0], [51.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 0, 0])
    ours = log_odds(logits, labels)
    assert ours.dtype == torch.float64
    loss = F.cross_entropy(logits.double(), labels, reduction="none")
    assert torch.allclose(F.softplus(ours[:2]), loss[:2], rtol=1e-12, atol=0)
    assert float(loss[2]) == float(loss[3]) == 0  # even in float64, a 50-logit margin leaves no loss
    assert float(ours[2]) > float(ours[3])


def _fitted_resnet(samples: int) -> tuple[torch.nn.Module, Split]:
    """A width-8 ResNet-18 fitted to `samples` CIFAR-shaped inputs (a class
    pattern plus as much noise): Adam until its training accuracy is 1, then
    its linear head refitted by L-BFGS on the frozen features until the
    float32 training loss is exactly 0 (there its gradient vanishes and
    L-BFGS stops), as in a network trained far past fitting its data."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    labels = torch.arange(samples) % 10
    inputs = torch.randn(10, 3, 32, 32, generator=gen)[labels] + torch.randn(samples, 3, 32, 32, generator=gen)
    model = ResNet18(width=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(100):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        opt.step()
        with torch.no_grad():
            if step % 5 == 4 and bool((model.eval()(inputs).argmax(1) == labels).all()):
                break
    with torch.no_grad():
        features = model.eval().features(inputs)
    head = torch.optim.LBFGS(model.linear.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        head.zero_grad()
        loss = F.cross_entropy(model.linear(features), labels)
        loss.backward()
        return loss

    head.step(closure)
    return model, Split(inputs, labels)


@pytest.fixture(scope="module")
def confident_resnet():
    return _fitted_resnet(60)


def test_lcodec_forgets_samples_a_fitted_resnet_has_no_float32_loss_on(confident_resnet):
    model, train = confident_resnet
    with torch.no_grad():
        assert bool((model(train.inputs).argmax(1) == train.labels).all())
    drop = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:20]
    fs, rs = _split(train, drop)
    copies, sigma, seed = 50, 0.1, 0
    noisy = ops.perturb(fs[0], copies, sigma, seed=seed).transpose(0, 1).flatten(0, 1)
    with torch.no_grad():
        old = F.cross_entropy(model(noisy), fs[1].repeat_interleave(copies), reduction="none").view(-1, copies)
    # The float32 loss the method used to explain: 0 on every copy of some sample, which it refused.
    assert int(((old.amax(dim=1) == 0) & (old.amin(dim=1) == 0)).sum()) > 0
    result = forget(model, "lcodec", forget=fs, retain=rs, seed=seed, perturbations=copies, sigma=sigma)
    assert all(picks for picks in result.report["per_sample_columns"])
    assert all(bool(torch.isfinite(p).all()) for p in result.model.parameters())


class _IgnoresPositive(torch.nn.Module):
    """A linear model that reads an input only where its first value is negative."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.where(x[:, :1] < 0, x, torch.zeros_like(x)))


def test_a_sample_the_model_ignores_is_named_and_needs_no_foci_for_all_units():
    torch.manual_seed(0)
    x = torch.randn(12, 4)
    x[:, 0] = -10
    x[1, 0] = 10  # forget sample 1 is ignored at any small sigma
    model, fs, rs = _IgnoresPositive(), (x[:3], torch.tensor([0, 1, 2])), (x[3:], torch.arange(9) % 3)
    with pytest.raises(ValueError, match=r"forget sample 1: its loss is the same on all 50 perturbed copies, even"):
        forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise=False)
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise=False, selection="all")
    assert result.report["selected_params"] == 15
