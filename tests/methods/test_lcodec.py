"""L-CODEC end to end: the Newton step on a convex model, the method on the
digits models (also one trained without weight decay) and on a ResNet-18
fitted to zero training loss, the safeguards of the step, the noise modes,
determinism, and bad requests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import unlearn
from unlearn import curvature, ops
from unlearn._core import Split
from unlearn.compare.digits import DIGITS_OPTIONS
from unlearn.evaluation import evaluate
from unlearn.evaluation.metrics import gradient_norm
from unlearn.methods import forget
from unlearn.methods.lcodec import lcodec, log_odds
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
        noise="off",
        l2=L2,
        damping=L2,  # the Newton step on the l2-regularised objective itself
        curvature_samples=len(rs[1]),
    )
    after = evaluate(result.model, forget=fs, retain=rs, test=rs, attacks=False, l2=L2)["grad_residual"]
    assert after < 0.1 * before, (before, after)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_lcodec_on_digits_lowers_the_residual_more_than_random_blocks(digits, arch):
    model = unlearn.train(arch)
    fs, rs = _split(digits.train, torch.arange(10))
    test = (digits.test.inputs, digits.test.labels)
    options = DIGITS_OPTIONS["lcodec"]
    l2 = options["l2"]
    base = evaluate(model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    ours = forget(model, "lcodec", forget=fs, retain=rs, seed=0, **options)
    rand = forget(model, "lcodec", forget=fs, retain=rs, seed=0, selection="random", **options)
    after = evaluate(ours.model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    after_random = evaluate(rand.model, forget=fs, retain=rs, test=test, attacks=False, l2=l2)
    assert after["grad_residual"] < base["grad_residual"]
    assert after["grad_residual"] < after_random["grad_residual"]
    assert abs(after["acc_test"] - base["acc_test"]) <= 0.02
    assert ours.report["selected_params"] > 0 and ours.report["step_norm"] > 0


def _full_batch_adam(inputs: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = unlearn.models.build("mlp")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def adam_mlp(digits):
    """The digits MLP fitted by full-batch Adam without weight decay: a model
    trained on another objective than the library's."""
    return _full_batch_adam(digits.train.inputs, digits.train.labels)


def test_linear_blocks_solved_by_conjugate_gradients_match_the_dense_solve(digits, adam_mlp, monkeypatch):
    fs, rs = _split(digits.train, torch.arange(10))
    ours = forget(adam_mlp, "lcodec", forget=fs, retain=rs, seed=0)
    solve = ours.report["conjugate_gradients"]
    assert solve["residual"] <= 1e-10 and solve["steps"] > 0 and ours.report["step_norm"] > 0
    monkeypatch.setattr(curvature, "kronecker_factor", lambda *args: None)  # the dense Gauss-Newton matrix instead
    dense = forget(adam_mlp, "lcodec", forget=fs, retain=rs, seed=0)
    assert "conjugate_gradients" not in dense.report
    assert ours.report["per_sample_columns"] == dense.report["per_sample_columns"]
    assert ours.report["damping"] == pytest.approx(dense.report["damping"], rel=1e-5)
    assert ours.report["step_norm"] == pytest.approx(dense.report["step_norm"], rel=1e-5)
    for a, b in zip(ours.model.parameters(), dense.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_solve_that_does_not_converge_is_reported_and_the_model_stays_finite(digits):
    """A damping far too small for a curvature of 8 samples (rank at most 72
    for 1539 parameters): conjugate gradients stop short, lcodec says so, and
    the trust radius shortens the step."""
    fs, rs = _split(digits.train, torch.arange(1))
    model = unlearn.train("cnn")
    with pytest.warns(UserWarning, match="conjugate gradients stopped at a relative residual"):
        result = forget(model, "lcodec", forget=fs, retain=rs, seed=0, noise="off", damping=1e-300, curvature_samples=8)
    report = result.report
    assert report["selected_blocks"] and report["conjugate_gradients"]["residual"] > 1e-6
    assert report["trust_factor"] < 1  # the unconverged step was longer than the trust radius allows
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def _mean_loss(model: torch.nn.Module, data) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model(data[0]).double(), data[1]))


def _accuracy_and_residual(model: torch.nn.Module, retain, test: Split) -> tuple[float, float]:
    """Test accuracy and the norm of the retained cross-entropy's gradient."""
    with torch.no_grad():
        accuracy = float((model(test.inputs).argmax(1) == test.labels).float().mean())
    return accuracy, gradient_norm(model, Split(*retain), l2=0.0)


def test_defaults_keep_a_model_trained_without_weight_decay_where_the_former_step_wrecks_it(digits, adam_mlp):
    drop = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0))[:10]
    fs, rs = _split(digits.train, drop)
    accuracy, residual = _accuracy_and_residual(adam_mlp, rs, digits.test)
    with pytest.warns(UserWarning, match="with l2 = 0 .* has no finite scale"):
        ours = forget(adam_mlp, "lcodec", forget=fs, retain=rs, seed=0, perturbations=200)
    after_accuracy, after_residual = _accuracy_and_residual(ours.model, rs, digits.test)
    # A removal step on the retained objective: the residual falls, the accuracy holds, and the
    # forget samples' loss rises toward that of the model retrained without them.
    assert after_accuracy >= accuracy - 0.02 and after_residual < residual, (accuracy, residual, ours.report)
    retrained = _full_batch_adam(*rs)
    assert _mean_loss(adam_mlp, fs) < _mean_loss(ours.model, fs) < _mean_loss(retrained, fs)
    search = ours.report["line_search"]
    assert 0 < search["scale"] <= 1 and search["objective_after"] <= (1 + search["slack"]) * search["objective_before"]
    assert ours.report["step_norm"] > 0 and not ours.report["noise"]["added"]
    # The first defaults: l2 = damping = 0.01, the full step unchecked, the retained gradient, one drawn label.
    former = dict(
        l2=0.01,
        damping=0.01,
        trust_radius=None,
        line_search=None,
        noise="off",
        gradient="retain",
        fisher="model",
        curvature_samples=512,
    )
    wrecked = forget(adam_mlp, "lcodec", forget=fs, retain=rs, seed=0, perturbations=200, **former)
    wrecked_accuracy, wrecked_residual = _accuracy_and_residual(wrecked.model, rs, digits.test)
    assert wrecked_accuracy < accuracy - 0.2 and wrecked_residual > 100 * residual, wrecked.report


def test_same_seed_same_result_and_report(digits):
    model = unlearn.train("mlp")
    fs, rs = _split(digits.train, torch.arange(3))
    options = dict(perturbations=200, l2=TRAINING_DEFAULTS["weight_decay"])
    a = forget(model, "lcodec", forget=fs, retain=rs, seed=4, noise="certified", **options)
    b = forget(model, "lcodec", forget=fs, retain=rs, seed=4, noise=True, **options)  # True is "certified"
    c = forget(model, "lcodec", forget=fs, retain=rs, seed=5, noise="certified", **options)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))
    report = a.report
    assert report["noise"]["added"] and report["noise"]["sigma"] > 0 and report["noise"]["mode"] == "certified"
    assert report["selected_blocks"] and report["timings"]["select"] >= 0 and report["timings"]["line_search"] >= 0
    assert {k: v for k, v in report.items() if k != "timings"} == {k: v for k, v in b.report.items() if k != "timings"}
    assert a.seconds > 0


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_auto_noise_is_left_out_when_it_would_bury_the_step_and_certified_adds_it(digits):
    model = unlearn.train("mlp")
    fs, rs = _split(digits.train, torch.arange(2))
    common = dict(forget=fs, retain=rs, seed=0, perturbations=100, l2=TRAINING_DEFAULTS["weight_decay"])
    off = forget(model, "lcodec", noise="off", **common)
    assert off.report["noise"] == {
        "mode": "off",
        "sigma": 0.0,
        "added": False,
        "reason": "noise='off'",
        "on": "selected",
    }
    step = off.report["step_norm"] / off.report["selected_params"] ** 0.5
    with pytest.warns(UserWarning, match=r"\(0\.1, 0\.01\) noise for n_train = 1347 has std .* noise='certified'"):
        auto = forget(model, "lcodec", **common)
    noise = auto.report["noise"]
    assert not noise["added"] and noise["sigma"] > 1000 * step and "bury the step" in noise["reason"]
    assert torch.equal(_weights(auto.model), _weights(off.model))
    small = forget(model, "lcodec", smoothness=1e-12, **common)  # sigma = 4e-12 of the paper's
    assert small.report["noise"]["added"] and small.report["noise"]["reason"] is None
    moved = (_weights(small.model) - _weights(off.model)).abs().max()
    assert 0 < moved < 10 * step
    certified = forget(model, "lcodec", noise="certified", **common)
    assert certified.report["noise"]["added"]
    assert (_weights(certified.model) - _weights(off.model)).abs().max() > noise["sigma"]
    with pytest.raises(ValueError, match="l2: with l2 = 0 .* is not finite"):
        forget(model, "lcodec", forget=fs, retain=rs, noise="certified")


def test_inplace_changes_the_callers_model_only_on_success(digits):
    model = unlearn.train("mlp")
    original = {k: v.clone() for k, v in model.state_dict().items()}
    fs, rs = _split(digits.train, torch.arange(2))
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=100, noise="off")
    assert result.model is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in original.items())
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=100, noise="off", inplace=True)
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
    forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise="off")
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


def _fitted_resnet(samples: int, held_out: int) -> tuple[torch.nn.Module, Split, Split]:
    """A width-8 ResNet-18 fitted to `samples` CIFAR-shaped inputs (a class
    pattern plus as much noise): Adam until its training accuracy is 1, then
    its linear head refitted by L-BFGS on the frozen features until the
    float32 training loss is exactly 0 (there its gradient vanishes and
    L-BFGS stops), as in a network trained far past fitting its data. Also
    `held_out` fresh inputs of the same classes, to test it on."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    patterns = torch.randn(10, 3, 32, 32, generator=gen)
    labels = torch.arange(samples) % 10
    inputs = patterns[labels] + torch.randn(samples, 3, 32, 32, generator=gen)
    test_labels = torch.arange(held_out) % 10
    test = Split(patterns[test_labels] + torch.randn(held_out, 3, 32, 32, generator=gen), test_labels)
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
    return model, Split(inputs, labels), test


@pytest.fixture(scope="module")
def confident_resnet():
    return _fitted_resnet(60, 100)


def _selected_norm(model: torch.nn.Module, blocks: list[tuple[str, int]]) -> float:
    """Norm of the parameter blocks of the (layer, unit) pairs `blocks`."""
    units = Units(model)
    rows: dict[str, list[int]] = {}
    for layer, unit in blocks:
        rows.setdefault(layer, []).append(unit)
    chosen = Selection({name: torch.tensor(r) for name, r in rows.items()}, units)
    return float(chosen.gather({name: p.detach() for name, p in model.named_parameters()}).norm())


def test_lcodec_forgets_samples_a_fitted_resnet_has_no_float32_loss_on(confident_resnet):
    model, train, test = confident_resnet
    with torch.no_grad():
        assert bool((model(train.inputs).argmax(1) == train.labels).all())
        accuracy = float((model(test.inputs).argmax(1) == test.labels).float().mean())
    drop = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:20]
    fs, rs = _split(train, drop)
    copies, sigma, seed = 50, 0.1, 0
    noisy = ops.perturb(fs[0], copies, sigma, seed=seed).transpose(0, 1).flatten(0, 1)
    with torch.no_grad():
        old = F.cross_entropy(model(noisy), fs[1].repeat_interleave(copies), reduction="none").view(-1, copies)
    # The float32 loss the method used to explain: 0 on every copy of some sample, which it refused.
    assert int(((old.amax(dim=1) == 0) & (old.amin(dim=1) == 0)).sum()) > 0
    with pytest.warns(UserWarning, match="no finite scale"):
        result = forget(model, "lcodec", forget=fs, retain=rs, seed=seed, perturbations=copies, sigma=sigma)
    report = result.report
    assert all(picks for picks in report["per_sample_columns"])
    assert all(bool(torch.isfinite(p).all()) for p in result.model.parameters())
    # Gradient and curvature both nearly vanish here; a damping of l2 = 0.01 made the step -w_S.
    before, after = (_selected_norm(m, report["selected_blocks"]) for m in (model, result.model))
    assert 0.9 * before <= after <= 1.1 * before, (before, after, report["newton_norm"])
    with torch.no_grad():
        assert float((result.model(test.inputs).argmax(1) == test.labels).float().mean()) >= accuracy - 0.05
    # The samples the model fits exactly are the ones whose loss rises (float64, from the logits).
    assert _mean_loss(result.model, fs) > _mean_loss(model, fs)


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
        forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise="off")
    result = forget(model, "lcodec", forget=fs, retain=rs, perturbations=50, noise="off", selection="all")
    assert result.report["selected_params"] == 15


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_every_pass_keeps_to_the_memory_budget(digits, arch):
    """memory_budget=0 leaves room for one sample a batch: every forward pass
    of the request (copies, gradient, curvature, line search, and forget()'s
    checks before and after) takes one."""
    model = unlearn.train(arch)
    fs, rs = _split(digits.train, torch.arange(2))
    seen: list[int] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    options = dict(perturbations=50, curvature_samples=20, line_search_samples=20, seed=0)
    for budget in (1 << 30, 0):
        seen.clear()
        report = lcodec(
            model, forget=Split(*fs), retain=Split(*rs), forget_classes=None, memory_budget=budget, **options
        )
        assert report["selected_params"] > 0 and report["step_norm"] > 0
        assert (max(seen) == 1) == (budget == 0)
    seen.clear()
    result = forget(model, "lcodec", forget=fs, retain=rs, memory_budget=0, **options)
    assert result.report["retain_check"]["samples"] > 1  # forget()'s own checks, one sample a pass too
    assert max(seen) == 1


class _TiedMLP(torch.nn.Module):
    """An MLP whose two hidden layers hold one weight tensor."""

    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 10)
        self.second.weight = self.first.weight

    def forward(self, x):
        h = torch.relu(self.second(torch.relu(self.first(x.flatten(1)))))
        return self.head(h)


@pytest.mark.parametrize("selection", ["foci", "all"])
def test_a_weight_two_layers_hold_is_stepped_once_and_stays_shared(digits, selection):
    torch.manual_seed(0)
    model = _TiedMLP()
    unlearn.training.fit(model, digits.train, **dict(TRAINING_DEFAULTS, epochs=10), seed=0)
    fs, rs = _split(digits.train, torch.arange(3))
    options = dict(selection=selection, perturbations=200, curvature_samples=128, seed=0)
    result = forget(model, "lcodec", forget=fs, retain=rs, **options)
    tied = result.model
    assert tied.second.weight is tied.first.weight
    assert result.report["step_norm"] > 0
    if selection == "all":  # the shared tensor counted once
        assert result.report["selected_params"] == sum(p.numel() for p in model.parameters())
    assert result.report["retain_check"]["accuracy_after"] >= result.report["retain_check"]["accuracy_before"] - 0.02


_SOLVE_MEMORY = textwrap.dedent(
    """
    import json, resource, sys, torch
    from unlearn import ops
    from unlearn.methods.lcodec import default_damping

    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    u = torch.randn(256, 1 << 16)  # a float32 factor of 64 MiB, m < d
    g = torch.randn(1 << 16, dtype=torch.float64)
    ops.block_solve([u[:4, :64]], g[:64], 1.0, [True])  # first calls: lazy loading
    default_damping(u[:4, :64], "factor", 0.0)
    start = peak()
    ops.block_solve([u], g, 1.0, [True]) if sys.argv[1] == "solve" else default_damping(u, "factor", 0.0)
    print(peak() - start)
    """
)


@pytest.mark.parametrize("stage", ["solve", "damping"])
def test_the_solve_stage_holds_no_converted_copy_of_a_factor(stage):
    """A factor sized to the memory budget is read a few MiB at a time by the
    default damping and by block_solve's checks and Woodbury solve: a float64
    copy of it and its square would take four times its size. Peak RSS in a
    fresh process, with glibc's mmap threshold fixed (see test_streaming)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    out = subprocess.run([sys.executable, "-c", _SOLVE_MEMORY, stage], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) < 32 << 10  # KiB: half the factor's 64 MiB
