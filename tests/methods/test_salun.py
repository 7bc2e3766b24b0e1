"""SalUn on the digits CNN: a class request forgets the class and keeps the
others, an instance request ends near retraining without wiping out the
forgotten samples, only the salient weights move, and a seed fixes the
result."""

from __future__ import annotations

import warnings

import pytest
import torch

import unlearn
from unlearn.methods import forget
from unlearn.methods.salun import saliency_mask

from .common import accuracy, cross_entropy, digits_cnn_request

FORGET_CLASS = 3


@pytest.fixture(scope="module")
def setup():
    return digits_cnn_request()


def test_a_class_request_forgets_the_class_and_keeps_the_others(setup):
    digits, model, fs, rs = setup
    train, test = digits.train, digits.test
    with warnings.catch_warnings():
        warnings.simplefilter("error", unlearn.QualityWarning)
        out = forget(model, "salun", retain=(train.inputs, train.labels), forget_classes=[FORGET_CLASS]).model
    gone = test.labels == FORGET_CLASS
    assert accuracy(out, test.inputs[gone], test.labels[gone]) <= 0.05
    kept = (test.inputs[~gone], test.labels[~gone])
    assert accuracy(out, *kept) >= accuracy(model, *kept) - 0.05


def test_an_instance_request_ends_near_retraining(setup):
    digits, model, fs, rs = setup
    test = digits.test
    out = forget(model, "salun", forget=fs, retain=rs).model
    retrained = forget(model, "retrain", forget=fs, retain=rs).model
    assert abs(accuracy(out, test.inputs, test.labels) - accuracy(retrained, test.inputs, test.labels)) <= 0.03
    # forgetting typical samples is not driving their accuracy to 0
    assert accuracy(out, *fs) >= accuracy(retrained, *fs) - 0.1


@pytest.mark.parametrize("variant", ["random_label", "gradient_ascent"])
def test_only_the_salient_weights_move(setup, variant):
    digits, model, fs, rs = setup
    options = {"variant": variant, "saliency": 0.2}
    if variant == "gradient_ascent":
        options["lr"] = 1e-3
    result = forget(model, "salun", forget=fs, retain=rs, **options)
    forget_split = unlearn.Split(*fs)
    mask = saliency_mask(model, forget_split, 0.2, 64)
    total = sum(m.numel() for m in mask.values())
    assert result.report["salient"] == int(0.2 * total) == int(sum(m.sum() for m in mask.values()))
    moved = 0
    for (name, before), after in zip(model.named_parameters(), result.model.parameters()):
        changed = before != after
        assert not bool(changed[mask[name] == 0].any()), name
        moved += int(changed.sum())
    assert moved > 0.5 * result.report["salient"]
    if variant == "gradient_ascent":
        assert cross_entropy(result.model, *fs) > cross_entropy(model, *fs)


def test_the_mask_ranks_the_forget_gradient_over_all_weights(setup):
    digits, model, fs, rs = setup
    forget_split = unlearn.Split(*fs)
    mask = saliency_mask(model, forget_split, 0.5, 7)  # batches of 7: the same gradient
    loss = torch.nn.functional.cross_entropy(model.eval()(fs[0]), fs[1], reduction="sum")
    grads = torch.autograd.grad(loss, list(model.parameters()))
    magnitude = torch.cat([g.abs().flatten() for g in grads])
    chosen = torch.cat([m.flatten() for m in mask.values()]).bool()
    assert int(chosen.sum()) == len(magnitude) // 2
    assert float(magnitude[chosen].min()) >= float(magnitude[~chosen].max()) * (1 - 1e-5)


def test_a_seed_fixes_the_weights(setup):
    digits, model, fs, rs = setup
    a = forget(model, "salun", forget=fs, retain=rs, seed=4, epochs=2).model
    b = forget(model, "salun", forget=fs, retain=rs, seed=4, epochs=2).model
    c = forget(model, "salun", forget=fs, retain=rs, seed=5, epochs=2).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(retain=None), "retain: salun needs"),
        (dict(variant="scrub"), "variant must be one of"),
        (dict(saliency=0.0), "saliency must be > 0 and <= 1"),
        (dict(saliency=1.5), "saliency must be > 0 and <= 1"),
    ],
)
def test_bad_requests_are_refused(setup, kwargs, match):
    digits, model, fs, rs = setup
    with pytest.raises(ValueError, match=match):
        forget(model, "salun", **{"forget": fs, "retain": rs, **kwargs})
