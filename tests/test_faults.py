"""Faults at the public entry points: every bad request raises ValueError or
TypeError naming the argument, and leaves the caller's model (weights, each
module's training flag, requires_grad) and torch's global RNG state as they
were, also when a KeyboardInterrupt strikes inside a method; no method hands
back non-finite weights."""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
import torch
from torch import nn

import unlearn
from unlearn import cli
from unlearn.methods import available, describe


@pytest.fixture(scope="module")
def digits():
    return unlearn.digits()


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return unlearn.train("mlp")


@pytest.fixture
def model(trained) -> nn.Module:
    """A fresh copy in a mixed state: training mode, one frozen tensor, one submodule in eval mode."""
    model = unlearn.models.build("mlp")
    model.load_state_dict(trained.state_dict())
    model.train()
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    first.bias.requires_grad_(False)
    list(model.modules())[-1].eval()
    return model


def snapshot(model: nn.Module) -> dict[str, Any]:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "rng": torch.get_rng_state(),
    }


def assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    assert all(torch.equal(before["state"][k], after["state"][k]) for k in before["state"])
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert torch.equal(before["rng"], after["rng"])


def request(digits, forget: int = 4) -> dict[str, Any]:
    x, y = digits.train.inputs, digits.train.labels
    return {"forget": (x[:forget], y[:forget]), "retain": (x[forget:400], y[forget:400])}


def method_request(digits, method: str) -> dict[str, Any]:
    """A good request for `method`: samples, or class 1 found in the retained data."""
    keywords = request(digits)
    info = describe(method)
    if info["scope"] == "class":
        keywords = {"retain": keywords["retain"], "forget_classes": [1]}
    if "mnemonic_codes" in info["needs"]:
        keywords["codes"] = torch.randn(10, *digits.train.inputs.shape[1:])
    return keywords


def forget_cases(digits) -> list[tuple[str, dict[str, Any], type, str]]:
    """(method, keywords, exception, the argument the message names) for every method."""
    x, y = request(digits)["forget"]
    cases = []
    for method in sorted(available()):
        base = method_request(digits, method)
        cases += [
            (method, {**base, "alpah": 1}, ValueError, "alpah"),
            (method, {**base, "seed": 2**64}, ValueError, "seed"),
            (method, {**base, "seed": 1.5}, TypeError, "seed"),
            (method, {**base, "inplace": 1}, TypeError, "inplace"),
            (method, {**base, "forget": (x, y + 10)}, ValueError, "forget"),
            (method, {**base, "forget": (x[:, :, :4], y)}, ValueError, "forget"),
            (method, {**base, "forget": (x.to("meta"), y.to("meta"))}, ValueError, "forget"),
            (method, {**base, "retain": "retain.pt"}, TypeError, "retain"),
            (method, {**base, "forget_classes": "12"}, TypeError, "forget_classes"),
            (method, {**base, "forget_classes": [1.7]}, TypeError, "forget_classes"),
            (method, {**base, "forget_classes": [12]}, ValueError, "forget_classes"),
        ]
    return cases


def test_every_method_refuses_bad_requests_and_changes_nothing(digits, model):
    torch.manual_seed(1234)
    for method, keywords, error, name in forget_cases(digits):
        before = snapshot(model)
        with pytest.raises(error, match=name):
            unlearn.forget(model, method, inplace=True, **keywords)
        assert_unchanged(model, before)


def test_dataloader_batches_must_be_pairs(digits, model):
    x, y = digits.train.inputs[:8], digits.train.labels[:8]
    loader = torch.utils.data.DataLoader([{"image": a, "label": b} for a, b in zip(x, y)], batch_size=4)
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"forget: the DataLoader yields dict batches \(keys \['image', 'label'\]\)"):
        unlearn.forget(model, "neggrad", forget=loader)
    assert_unchanged(model, before)


def test_a_model_on_the_meta_device_is_refused(digits):
    with torch.device("meta"):
        model = unlearn.models.build("mlp")
    with pytest.raises(ValueError, match="model has parameters on the meta device"):
        unlearn.forget(model, "neggrad", **request(digits))
    with pytest.raises(ValueError, match="model has parameters on the meta device"):
        unlearn.evaluate(model, **request(digits), test=request(digits)["retain"])


def _interrupt_inside(model: nn.Module) -> Callable[[], None]:
    """A forward hook on `model` that raises KeyboardInterrupt as soon as a
    copy of the model runs forward (the method's private copy)."""
    layer = next(m for m in model.modules() if isinstance(m, nn.Linear))

    def hook(module, inputs, output):
        if module is not layer:
            raise KeyboardInterrupt

    return layer.register_forward_hook(hook).remove


@pytest.mark.parametrize("method", sorted(available()))
def test_a_keyboard_interrupt_inside_a_method_changes_nothing(digits, model, method):
    keywords = method_request(digits, method)
    torch.manual_seed(99)
    remove = _interrupt_inside(model)
    before = snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        unlearn.forget(model, method, inplace=True, **keywords)
    remove()
    assert_unchanged(model, before)


# Options that push each method as far as it goes: the result is finite, or the call is refused.
EXTREME: dict[str, dict[str, Any]] = {
    "finetune": {"lr": 1e12},
    "neggrad": {"lr": 1e12},
    "neggrad_plus": {"lr": 1e12},
    "random_label": {"lr": 1e12},
    "salun": {"lr": 1e12},
    "l1_sparse": {"lr": 1e12, "gamma": 1e300},
    "retrain": {"lr": 1e12, "epochs": 1},
    "l2ul": {"lr": 1e12, "max_steps": 3, "pgd_steps": 2, "n_adv": 2},
    "scrub": {"lr": 1e12, "epochs": 2, "max_epochs": 1},
    "bad_teacher": {"lr": 1e12},
    "lcodec": {"l2": 1e-105, "perturbations": 50},
    "fisher": {"alpha": 1e300, "max_std": 1e300},
    "ssd": {"alpha": 1e-300, "dampening": 1e300},
    "svd_projection": {"alpha_r": 1e300, "alpha_f": 1e300, "samples": 50},
    "mnemonic": {"lambda1": 1e300, "lambda2": 1e300},
    "boundary_shrink": {"lr": 1e12, "epochs": 1},
    "boundary_expand": {"lr": 1e12, "epochs": 1},
    "unsir": {"impair_lr": 1e12, "repair_lr": 1e12, "noise_samples": 8, "noise_copies": 1},
}


@pytest.mark.parametrize("method", sorted(available()))
def test_no_method_returns_non_finite_weights(digits, model, method):
    assert set(EXTREME) == set(available())
    keywords = {**method_request(digits, method), **EXTREME[method]}
    before = snapshot(model)
    try:
        result = unlearn.forget(model, method, inplace=True, **keywords)
    except ValueError as error:
        named = [name for name in [*EXTREME[method], "non-finite", "diverged"] if name in str(error)]
        assert named, f"{method}: the refusal names no option: {error}"
        assert_unchanged(model, before)
        return
    assert all(bool(torch.isfinite(t).all()) for t in result.model.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda d: unlearn.codec(d.train.labels, d.train.inputs.flatten(1), seed=2**64), ValueError, "seed"),
        (lambda d: unlearn.codec(d.train.labels * 0, d.train.inputs.flatten(1)), ValueError, "y is constant"),
        (lambda d: unlearn.codec(d.train.labels, d.train.inputs.flatten(1)[:, :0]), ValueError, "z"),
        (lambda d: unlearn.codec(d.train.labels, "pixels"), TypeError, "z"),
        (lambda d: unlearn.foci(d.train.labels, d.train.inputs.flatten(1), max_select=0), ValueError, "max_select"),
        (lambda d: unlearn.foci(d.train.labels, d.train.inputs.flatten(1), max_select=2.0), TypeError, "max_select"),
        (lambda d: unlearn.foci(d.train.labels[:5], d.train.inputs.flatten(1)), ValueError, "y"),
        (lambda d: unlearn.foci(d.train.labels, d.train.inputs.flatten(1) * math.nan), ValueError, "features"),
    ],
)
def test_statistics_refuse_bad_input_naming_it(digits, call, error, name):
    with pytest.raises(error, match=name):
        call(digits)


def test_evaluate_refuses_bad_input_and_changes_nothing(digits, model):
    good = {**request(digits), "test": request(digits)["retain"]}
    cases = [
        ({"l2": -1.0}, ValueError, "l2"),
        ({"l2": math.inf}, ValueError, "l2"),
        ({"seed": 2**64}, ValueError, "seed"),
        ({"attacks": "yes"}, TypeError, "attacks"),
        ({"forget_classes": "3"}, TypeError, "forget_classes"),
        ({"reference": nn.Linear(2, 2)}, ValueError, "reference"),
        ({"test": (good["test"][0].to("meta"), good["test"][1].to("meta"))}, ValueError, "test"),
    ]
    for keywords, error, name in cases:
        before = snapshot(model)
        with pytest.raises(error, match=name):
            unlearn.evaluate(model, **{**good, **keywords})
        assert_unchanged(model, before)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["run", "--method", "lcodec", "--seed", str(2**64)], "seed"),
        (["run", "--forget-class", "-1"], "--forget-class"),
        (["compare", "--methods", "lcodec,nope", "--forget-samples", "2"], "nope"),
    ],
)
def test_the_command_line_gives_one_line_and_exit_code_2(argv, flag, capsys):
    assert cli.main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]
