"""unlearn.compare on a model and data of the caller's (a small MLP on
Gaussian blobs, not the digits): its rows, the methods it runs or skips, the
errors it raises before any training, and a retrain function of the caller's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import unlearn
from unlearn import MnemonicCodes, Split
from unlearn.compare import runner
from unlearn.training import fit

CLASSES, FEATURES = 3, 4
FIT = dict(epochs=20, lr=0.1, weight_decay=5e-4, batch_size=32)
# Small budgets: the tests check the plumbing, not how well each method forgets.
FAST_METHODS = {"finetune": {"epochs": 1}, "neggrad": {"epochs": 1}}
FAST = {**FAST_METHODS, "retrain": {"epochs": 5}}


def _blobs(n_per_class: int, generator: torch.Generator) -> Split:
    centers = 3 * torch.eye(CLASSES, FEATURES)
    labels = torch.arange(CLASSES).repeat_interleave(n_per_class)
    return Split(centers[labels] + torch.randn(len(labels), FEATURES, generator=generator), labels)


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, CLASSES))


def _trained(split: Split, seed: int = 0, **kwargs) -> nn.Module:
    model = _mlp(seed)
    fit(model, split, seed=seed, **FIT, **kwargs)
    return model.eval()


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(0)
    train, test = _blobs(60, g), _blobs(30, g)
    return _trained(train), train, test


def _instance(train: Split) -> dict[str, Split]:
    """The first 10 training samples to forget, the rest to keep."""
    inputs, labels = train.inputs, train.labels
    return {"forget": Split(inputs[:10], labels[:10]), "retain": Split(inputs[10:], labels[10:])}


def _never(*args, **kwargs):
    pytest.fail("retraining ran although the call was refused")


def test_each_method_is_scored_next_to_the_original_and_retraining(task):
    model, train, test = task
    out = unlearn.compare(model, "finetune, neggrad", **_instance(train), test=test, options=FAST)
    metrics = out["metrics"]
    assert list(metrics) == ["original", "retrain", "finetune", "neggrad"]
    assert all(0 <= row["acc_forget"] <= 1 and "mia_loss_logreg" in row for row in metrics.values())
    assert "seconds" not in metrics["original"] and metrics["retrain"]["seconds"] > 0
    assert metrics["retrain"]["js_divergence"] == pytest.approx(0, abs=1e-6)
    assert all(metrics[name]["seconds"] > 0 and metrics[name]["speedup"] > 0 for name in ("finetune", "neggrad"))
    assert set(out["reports"]) == {"retrain", "finetune", "neggrad"} and out["reports"]["retrain"]["epochs"] == 5
    assert out["skipped"] == {}


def test_all_serves_a_class_request_and_skips_what_the_call_cannot_meet(task):
    model, train, test = task
    out = unlearn.compare(model, "all", retain=train, test=test, forget_classes=[2], options=FAST)
    assert set(out["metrics"]) == {"original", "retrain", *unlearn.methods.applicable("class")} - {"mnemonic"}
    assert "MnemonicCodes" in out["skipped"]["mnemonic"]
    assert out["metrics"]["finetune"]["acc_test_forget"] >= 0


def test_a_method_given_its_model_and_codes_runs_from_that_model(task, monkeypatch):
    model, train, test = task
    codes = MnemonicCodes(train, seed=0)
    with_codes = _trained(train, seed=1, mnemonic=codes)
    started = {}

    def spy(start, method, **kwargs):
        started[method] = start
        return unlearn.forget(start, method, **kwargs)

    monkeypatch.setattr(runner, "run_method", spy)
    out = unlearn.compare(
        model,
        ["mnemonic"],
        retain=train,
        test=test,
        forget_classes=[2],
        models={"mnemonic": with_codes},
        options={**FAST, "mnemonic": {"codes": codes}},
    )
    assert set(out["metrics"]) == {"original", "retrain", "mnemonic"} and out["skipped"] == {}
    assert started == {"retrain": model, "mnemonic": with_codes}


@pytest.mark.parametrize(
    "methods, kwargs, match",
    [
        ("finetune,mnemonic", dict(forget_classes=[2]), "method 'mnemonic' needs a model trained with MnemonicCodes"),
        ("finetune,nope", {}, "unknown method 'nope'"),
        ("svd_projection", {}, "'svd_projection' does not serve instance requests"),
        (" , ", {}, "methods is empty"),
        ("finetune", dict(options={"nope": {}}), "options: unknown method 'nope'"),
        ("finetune", dict(models={"nope": nn.Linear(1, 1)}), "models: unknown method 'nope'"),
        ("finetune", dict(options={"finetune": {"bogus": 1}}), "finetune has no option 'bogus'"),
        ("finetune", dict(options={"retrain": {"epochs": 1}}, retrain=_never), r"options\['retrain'\]"),
    ],
)
def test_what_the_call_cannot_serve_raises_value_error_before_training(task, methods, kwargs, match):
    model, train, test = task
    request = {**_instance(train), "retrain": _never, **kwargs}
    if "forget_classes" in kwargs:
        request.pop("forget")
    with pytest.raises(ValueError, match=match):
        unlearn.compare(model, methods, **request, test=test)


def test_a_request_without_forget_samples_or_classes_raises(task):
    model, train, test = task
    with pytest.raises(ValueError, match="forget: give the samples to forget"):
        unlearn.compare(model, "finetune", retain=train, test=test)


def _retrain_with_seed(retain, seed):
    _retrain_with_seed.calls.append((retain, seed))
    return _trained(retain, seed=seed)


def _retrain_without_seed(retain):
    _retrain_without_seed.calls.append((retain, None))
    return _trained(retain)


@pytest.mark.parametrize("retrain, seed", [(_retrain_with_seed, 7), (_retrain_without_seed, None)])
def test_a_retrain_function_of_the_caller_is_the_reference(task, retrain, seed):
    model, train, test = task
    retrain.calls = []
    out = unlearn.compare(
        model, "finetune", retain=train, test=test, forget_classes=[2], retrain=retrain, seed=7, options=FAST_METHODS
    )
    ((retain, given_seed),) = retrain.calls
    assert given_seed == seed and isinstance(retain, Split)
    assert len(retain) == 120 and not bool((retain.labels == 2).any())  # the forgotten class is not retrained on
    assert out["metrics"]["retrain"]["param_distance"] == 0 and out["metrics"]["retrain"]["seconds"] > 0
    assert out["reports"]["retrain"] == {"function": retrain.__qualname__}


def test_a_retrain_function_must_return_a_model(task):
    model, train, test = task
    with pytest.raises(TypeError, match="retrain must return a torch.nn.Module, got NoneType"):
        unlearn.compare(model, "finetune", **_instance(train), test=test, retrain=lambda retain: None)


def test_the_function_is_unlearn_compare_and_the_digits_experiment_stays_importable():
    from unlearn.compare import DIGITS_OPTIONS, digits_request

    assert unlearn.compare is runner.compare and "compare" in unlearn.__all__
    assert callable(digits_request) and "lcodec" in DIGITS_OPTIONS
