"""unlearn.compare on a model and data of the caller's (a small MLP on
Gaussian blobs, not the digits): its rows and confidences, the methods it runs
or skips, the errors it raises before any training, and a retrain function of
the caller's. Then compare_digits_seeds on the digits: its means and standard
deviations over model seeds, its forget quality F and final scores."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch import nn

import unlearn
from unlearn import MnemonicCodes, Split
from unlearn.compare import compare_digits, compare_digits_seeds, digits_request, runner
from unlearn.compare import seeds as seeds_module
from unlearn.evaluation import forget_quality_from_confidences, logit_confidence, model_confidences
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


def test_each_columns_confidences_are_its_models_logit_confidences_on_the_forget_split(task, monkeypatch):
    model, train, test = task
    finished = {}

    def spy(start, method, **kwargs):
        result = unlearn.forget(start, method, **kwargs)
        finished[method] = result.model
        return result

    monkeypatch.setattr(runner, "run_method", spy)
    request = _instance(train)
    out = unlearn.compare(model, "finetune,neggrad", **request, test=test, options=FAST)
    forget = request["forget"]
    columns = {"original": model, **finished}
    assert list(out["confidences"]) == ["original", "retrain", "finetune", "neggrad"] == list(out["metrics"])
    for name, scored in columns.items():
        with torch.no_grad():
            expected = logit_confidence(scored(forget.inputs), forget.labels)
        got = out["confidences"][name]
        assert got.shape == (10,) and got.dtype == torch.float64 and got.device.type == "cpu"
        torch.testing.assert_close(got, expected)
    # The retrained and unlearned models differ from the original on what they forgot.
    assert not torch.equal(out["confidences"]["retrain"], out["confidences"]["original"])


# The digits over model seeds: a small instance request, fast methods, the MLP.
SEEDS_METHODS = "neggrad,random_label"


@pytest.fixture(scope="module")
def over_seeds():
    """compare_digits_seeds over 3 seeds, with every per-seed compare_digits run it made."""
    request = digits_request(unlearn.digits(), forget_samples=6, seed=0)
    runs = []

    def recorded(*args, **kwargs):
        runs.append((args, kwargs, compare_digits(*args, **kwargs)))
        return runs[-1][2]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seeds_module, "compare_digits", recorded)
        out = compare_digits_seeds(SEEDS_METHODS, request, arch="mlp", seeds=3)
    return request, runs, out


def test_over_seeds_each_score_is_the_mean_and_sample_std_of_the_per_seed_runs(over_seeds):
    request, runs, out = over_seeds
    assert [kwargs["seed"] for _, kwargs, _ in runs] == out["seeds"] == [0, 1, 2]
    assert all(args == (SEEDS_METHODS, request) and kwargs["arch"] == "mlp" for args, kwargs, _ in runs)
    assert json.loads(json.dumps(out)) == out  # plain data, no tensors
    assert list(out["metrics"]) == ["original", "retrain", "neggrad", "random_label"]
    for column, scores in out["metrics"].items():
        assert set(scores) == set(runs[0][2]["metrics"][column])
        for key, summary in scores.items():
            values = torch.tensor([run["metrics"][column][key] for _, _, run in runs], dtype=torch.float64)
            assert summary["mean"] == pytest.approx(float(values.mean()), rel=1e-12, abs=1e-15)
            assert summary["std"] == pytest.approx(float(values.std(correction=1)), rel=1e-9, abs=1e-15)
    # The seeds train different models: the original's distance to retraining varies.
    assert out["metrics"]["original"]["param_distance"]["std"] > 0


def test_over_seeds_forget_quality_compares_each_column_with_the_retrained_models(over_seeds):
    request, runs, out = over_seeds

    def stacked(column):
        return torch.stack([run["confidences"][column] for _, _, run in runs])

    assert set(out["forget_quality"]) == set(out["final_score"]) == set(out["metrics"])
    for column in ("original", "neggrad", "random_label"):
        expected = forget_quality_from_confidences(stacked(column), stacked("retrain")).score
        assert out["forget_quality"][column] == expected
    for score in out["forget_quality"].values():
        # 3 models per side: each example earns 1, 1/2 or 0 points, F is their mean.
        half_points = 2 * score * len(request.indices)
        assert 0 <= score <= 1 and half_points == pytest.approx(round(half_points))
    for column, score in out["final_score"].items():
        ratios = [
            statistics.fmean(run["metrics"][column][key] for _, _, run in runs)
            / statistics.fmean(run["metrics"]["retrain"][key] for _, _, run in runs)
            for key in ("acc_retain", "acc_test")
        ]
        assert score == pytest.approx(out["forget_quality"][column] * ratios[0] * ratios[1])
    assert out["final_score"]["retrain"] == pytest.approx(out["forget_quality"]["retrain"])


def _retrained(request, seed):
    model = unlearn.forget(
        unlearn.train("mlp"), "retrain", forget=request.forget, retain=request.retain, seed=seed
    ).model
    return model_confidences(model, request.forget)


def test_over_seeds_retrains_ceiling_is_retraining_against_more_retrained_models(over_seeds):
    request, runs, out = over_seeds
    assert out["reference_seeds"] == [3, 4, 5]
    # Retraining by hand with a run's seed gives that run's reference, so the
    # second set below is made as the references are.
    torch.testing.assert_close(_retrained(request, 0), runs[0][2]["confidences"]["retrain"])
    ceiling = torch.stack([_retrained(request, seed) for seed in out["reference_seeds"]])
    references = torch.stack([run["confidences"]["retrain"] for _, _, run in runs])
    assert out["forget_quality"]["retrain"] == forget_quality_from_confidences(references, ceiling).score


def test_over_one_seed_there_is_no_spread_and_no_forget_quality(over_seeds, monkeypatch):
    request, runs, _ = over_seeds
    monkeypatch.setattr(seeds_module, "compare_digits", lambda *args, **kwargs: runs[1][2])
    out = compare_digits_seeds(SEEDS_METHODS, request, arch="mlp", seeds=[1])
    assert out["seeds"] == [1] and out["reference_seeds"] == []
    assert out["forget_quality"] == {} and out["final_score"] == {}
    summary = out["metrics"]["neggrad"]["acc_forget"]
    assert summary == {"mean": runs[1][2]["metrics"]["neggrad"]["acc_forget"], "std": None}


@pytest.mark.parametrize(
    "seeds, error, match",
    [
        (0, ValueError, "seeds must be at least 1, got 0"),
        ([], ValueError, "seeds is empty"),
        ([2, 2], ValueError, r"seeds must be distinct, got \[2, 2\]"),
        (True, TypeError, "seeds must be an int or a sequence of ints, got bool"),
        ("3", TypeError, "seeds must be an int or a sequence of ints, got str"),
        ([0, 1.5], TypeError, r"seeds\[1\]"),
    ],
)
def test_bad_seeds_are_refused_before_any_run(seeds, error, match, monkeypatch):
    monkeypatch.setattr(seeds_module, "compare_digits", _never)
    request = digits_request(unlearn.digits(), forget_samples=3)
    with pytest.raises(error, match=match):
        compare_digits_seeds("neggrad", request, arch="mlp", seeds=seeds)
