"""l2ul: the batched targeted PGD, the MAS weights, the stopping rule, determinism and errors."""

from __future__ import annotations

import pytest
import torch

import unlearn
from unlearn.audit import audit_request
from unlearn.compare import digits_request
from unlearn.ensemble import train_ensemble
from unlearn.methods import forget
from unlearn.methods.l2ul import mas_penalty_weights, targeted_pgd


@pytest.fixture(scope="module")
def setup():
    digits = unlearn.digits()
    return digits, unlearn.train("cnn")


def test_pgd_stays_in_the_ball_and_the_bounds_and_mostly_hits_its_targets(setup):
    digits, model = setup
    x = digits.train.inputs[:16]
    targets = (digits.train.labels[:16] + 1) % 10
    eps = 1.5
    adv = targeted_pgd(
        model, x, targets, eps, eps / 20, 40, (float(x.min()), float(x.max())), torch.Generator().manual_seed(0)
    )
    assert bool(((adv - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-5)).all())
    assert float(adv.min()) >= float(x.min()) and float(adv.max()) <= float(x.max())
    with torch.no_grad():
        hit = float((model(adv).argmax(1) == targets).double().mean())
        before = float((model(x).argmax(1) == targets).double().mean())
    assert hit >= 0.5 and before == 0.0


def test_batched_pgd_equals_one_run_per_restart(setup):
    digits, model = setup
    x = digits.train.inputs[:3].repeat_interleave(2, 0)
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    together = targeted_pgd(model, x, targets, 1.0, 0.05, 10, None, torch.Generator().manual_seed(0))
    # The same random starts, then each restart alone.
    gen = torch.Generator().manual_seed(0)
    d = x[0].numel()
    start = torch.randn(x.shape, generator=gen)
    start = start / start.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    radius = torch.rand(len(x), generator=gen) ** (1.0 / d)
    for i in range(len(x)):
        alone = x[i : i + 1] + start[i : i + 1] * radius[i]
        delta = alone - x[i : i + 1]
        for _ in range(10):
            delta.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x[i : i + 1] + delta), targets[i : i + 1], reduction="sum")
            (g,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = delta - 0.05 * g / g.norm().clamp_min(1e-12)
                delta = delta * min(1.0, 1.0 / float(delta.norm()))
        torch.testing.assert_close(together[i : i + 1], x[i : i + 1] + delta, rtol=1e-4, atol=1e-5)


def test_mas_weights_lie_in_0_1_and_a_constant_tensor_gets_1():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        model[2].bias.fill_(0.5)
    x = torch.randn(5, 4)
    weights = mas_penalty_weights(model, x)
    for name, w in weights.items():
        assert bool(((w >= 0) & (w <= 1)).all()) and torch.isfinite(w).all(), name
    # A tensor whose importance is the same everywhere gets weight 1, not 0 / 0.
    frozen = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with torch.no_grad():
        frozen[0].weight.zero_()
        frozen[0].bias.fill_(1.0)
    w = mas_penalty_weights(frozen, x)["0.bias"]
    assert torch.equal(w, torch.ones_like(w))


def test_stops_when_every_instance_is_misclassified_and_is_deterministic(setup):
    digits, model = setup
    fs = (digits.train.inputs[:4], digits.train.labels[:4])
    options = dict(n_adv=2, pgd_steps=5, lr=0.05, importance=0.0, max_steps=50)
    a = forget(model, "l2ul", forget=fs, seed=1, **options)
    b = forget(model, "l2ul", forget=fs, seed=1, **options)
    assert a.report["reached"] and a.report["forget_accuracy"] == 0.0 and a.report["steps"] < 50
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_relabel_variant_reaches_its_labels(setup):
    digits, model = setup
    fs = (digits.train.inputs[:4], digits.train.labels[:4])
    new = (fs[1] + 3) % 10
    out = forget(
        model,
        "l2ul",
        forget=fs,
        variant="relabel",
        relabel_to=new,
        n_adv=2,
        pgd_steps=5,
        lr=0.05,
        importance=0.0,
        max_steps=100,
    )
    assert out.report["reached"]
    with torch.no_grad():
        assert torch.equal(out.model(fs[0]).argmax(1), new)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(variant="forget"), "variant must be one of"),
        (dict(variant="relabel"), "relabel_to"),
        (dict(eps=-1.0), "eps must be > 0"),
        (dict(pgd_steps=0), "pgd_steps must be >= 1"),
        (dict(forget_classes=[3], forget=None), "forgets samples, not classes"),
    ],
)
def test_bad_requests(setup, kwargs, match):
    digits, model = setup
    args = {"forget": (digits.train.inputs[:4], digits.train.labels[:4]), **kwargs}
    if args["forget"] is None:
        del args["forget"]
        args["retain"] = (digits.train.inputs, digits.train.labels)
    with pytest.raises(ValueError, match=match):
        forget(model, "l2ul", **args)


def test_twenty_random_digits_with_the_defaults_keep_the_model(setup):
    # Restarts that miss their target class are dropped: kept as they were,
    # they would teach a wrong label for the forget instance itself and cost
    # several points of test accuracy.
    digits, model = setup
    request = digits_request(digits, forget_samples=20, seed=0)
    out = forget(model, "l2ul", forget=(request.forget.inputs, request.forget.labels), seed=0)
    report = out.report
    assert 0 < report["pgd_success"] < 1
    assert report["adversarial_examples"] == round(report["pgd_success"] * 20 * 20)
    test = digits.test
    with torch.no_grad():
        before = float((model(test.inputs).argmax(1) == test.labels).double().mean())
        after = float((out.model(test.inputs).argmax(1) == test.labels).double().mean())
        still = float((out.model(request.forget.inputs).argmax(1) == request.forget.labels).double().mean())
    assert after >= before - 0.03
    assert still == report["forget_accuracy"]


def test_memorised_wrong_labels_are_forgotten_and_test_accuracy_kept():
    """L2UL's use in its paper: samples the model memorised. Twenty training
    digits get wrong labels, a CNN trained without weight decay learns them
    by heart. With the defaults (200 steps) l2ul removes most wrong labels,
    with 1000 steps nearly all, and the test accuracy stays within 2 points
    (on typical samples, by contrast, 1000 steps cost some 15 points: see
    the test above, which holds at 200)."""
    request = audit_request(mislabelled=20, seed=0)
    (model,) = train_ensemble("cnn", [0], split=request.train, epochs=40, weight_decay=0.0)
    forget_data = (request.forget.inputs, request.forget.labels)
    test = unlearn.digits().test

    def accuracy(m: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> float:
        with torch.no_grad():
            return float((m.eval()(inputs).argmax(1) == labels).double().mean())

    assert accuracy(model, *forget_data) >= 0.8  # memorised
    for steps, left in ((200, 0.3), (1000, 0.1)):
        out = forget(model, "l2ul", forget=forget_data, seed=0, max_steps=steps)
        assert accuracy(out.model, *forget_data) <= left
        assert accuracy(out.model, test.inputs, test.labels) >= accuracy(model, test.inputs, test.labels) - 0.02
