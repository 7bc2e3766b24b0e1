"""L-CODEC end to end: the Newton step on a convex model, the method on the
digits models, determinism, and bad requests."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import unlearn
from unlearn import curvature
from unlearn._core import Split
from unlearn.evaluation import evaluate
from unlearn.methods import forget
from unlearn.models import LogisticRegression
from unlearn.training import TRAINING_DEFAULTS
from unlearn.units import Selection, Units

L2 = 0.01


@pytest.fixture(scope="module")
def digits():
    return unlearn.digits()


def _split(data, drop):
    keep = torch.ones(len(data.train), dtype=torch.bool)
    keep[drop] = False
    forget_set = (data.train.inputs[drop], data.train.labels[drop])
    retain_set = (data.train.inputs[keep], data.train.labels[keep])
    return forget_set, retain_set


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
    fs, rs = _split(digits, torch.arange(10))
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
    fs, rs = _split(digits, torch.arange(3))
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
    fs, rs = _split(digits, torch.arange(2))
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
    fs, rs = _split(digits, torch.arange(3))
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
    fs, rs = _split(digits, torch.arange(2))
    forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise=False)
    evaluate(model, forget=fs, retain=rs, test=rs, attacks=False)
    assert model.training and not norm.training
    model.eval()
