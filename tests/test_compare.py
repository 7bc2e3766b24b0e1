"""unlearn.compare on a model and data of the caller's (a small MLP on
Gaussian blobs, not the digits): its rows and confidences, the methods it runs
or skips, the errors it raises before any training, and a retrain function of
the caller's and the data it receives, the same over several seeds (one model,
the methods' and retraining's seeds varying), JSON and plots. Then
compare_digits_seeds on the digits: its means and standard deviations over
model seeds, its forget quality F and final scores."""

from __future__ import annotations

import copy
import json
import statistics
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, SubsetRandomSampler, TensorDataset

import unlearn
from unlearn import MnemonicCodes, Split
from unlearn.compare import compare_digits, compare_digits_seeds, digits_request, runner
from unlearn.compare import digits as digits_module
from unlearn.compare.display import comparison_figure, run_figure
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
        patch.setattr(digits_module, "compare_digits", recorded)
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
    monkeypatch.setattr(digits_module, "compare_digits", lambda *args, **kwargs: runs[1][2])
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
    monkeypatch.setattr(digits_module, "compare_digits", _never)
    request = digits_request(unlearn.digits(), forget_samples=3)
    with pytest.raises(error, match=match):
        compare_digits_seeds("neggrad", request, arch="mlp", seeds=seeds)


# The caller's retraining gets the retained data in the form the caller gave it.


def _recording_retrain(model):
    """A retrain function that records what it receives and returns a copy of `model` (no training)."""

    def retrain(data, seed):
        retrain.calls.append((data, seed))
        return copy.deepcopy(model)

    retrain.calls = []
    return retrain


def test_a_retrain_function_gets_a_tuple_when_given_a_tuple(task):
    model, train, test = task
    retrain = _recording_retrain(model)
    pair = (train.inputs[10:], train.labels[10:])
    unlearn.compare(model, "neggrad", forget=_instance(train)["forget"], retain=pair, test=test, retrain=retrain)
    ((data, seed),) = retrain.calls
    assert type(data) is tuple and data[0] is pair[0] and torch.equal(data[1], pair[1]) and seed == 0


def test_a_retrain_function_gets_the_callers_dataloader_when_nothing_is_filtered(task):
    model, train, test = task
    retrain = _recording_retrain(model)
    loader = DataLoader(TensorDataset(train.inputs[10:], train.labels[10:]), batch_size=16)
    unlearn.compare(model, "neggrad", forget=_instance(train)["forget"], retain=loader, test=test, retrain=retrain)
    ((data, _),) = retrain.calls
    assert data is loader


def test_a_class_request_gives_retrain_a_dataloader_over_the_other_classes_with_the_same_batch_size(task):
    model, train, test = task
    retrain = _recording_retrain(model)
    loader = DataLoader(TensorDataset(train.inputs, train.labels), batch_size=16, shuffle=True, drop_last=True)
    unlearn.compare(model, "neggrad", retain=loader, test=test, forget_classes=[2], retrain=retrain, seed=4)
    ((data, seed),) = retrain.calls
    assert isinstance(data, DataLoader) and data is not loader and seed == 4
    assert data.batch_size == 16 and data.drop_last and isinstance(data.sampler, RandomSampler)
    labels = torch.cat([batch[1] for batch in data])
    assert len(labels) == 112 and not bool((labels == 2).any())  # 120 samples kept, 7 full batches of 16


def test_a_loader_with_its_own_sampler_is_filtered_batch_by_batch_for_retrain(task):
    model, train, test = task
    retrain = _recording_retrain(model)
    sampler = SubsetRandomSampler(list(range(0, len(train), 2)), generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(train.inputs, train.labels), batch_size=8, sampler=sampler)
    out = unlearn.compare(model, "neggrad", retain=loader, test=test, forget_classes=[2], retrain=retrain)
    ((data, _),) = retrain.calls
    assert isinstance(data, runner.KeptBatches) and len(data) == len(loader)
    seen = torch.cat([batch[1] for batch in data])
    every_other = train.labels[::2]
    assert not bool((seen == 2).any()) and sorted(seen.tolist()) == sorted(every_other[every_other != 2].tolist())
    assert out["metrics"]["neggrad"]["acc_forget"] <= 1.0


# Over several seeds, the user's model stays and the methods' and retraining's seeds vary.
USER_METHODS = "neggrad"


@pytest.fixture(scope="module")
def user_seeds(task):
    """unlearn.compare over 3 seeds, with every per-seed run it made."""
    model, train, test = task
    runs = []

    def recorded(plan, seed, tag=""):
        runs.append((seed, run(plan, seed, tag)))
        return runs[-1][1]

    run = runner._run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "_run", recorded)
        out = unlearn.compare(model, USER_METHODS, **_instance(train), test=test, options=FAST, seeds=3)
    return runs, out


def test_over_seeds_compare_summarises_the_per_seed_runs(user_seeds):
    runs, out = user_seeds
    assert [seed for seed, _ in runs] == out["seeds"] == [0, 1, 2] and out["reference_seeds"] == [3, 4, 5]
    assert json.loads(json.dumps(out)) == out
    assert list(out["metrics"]) == ["original", "retrain", "neggrad"]
    for column, scores in out["metrics"].items():
        for key, summary in scores.items():
            values = [run["metrics"][column][key] for _, run in runs]
            assert summary["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12, abs=1e-15)
            assert summary["std"] == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-15)
    stacked = {column: torch.stack([run["confidences"][column] for _, run in runs]) for column in out["metrics"]}
    # The model is the caller's in every run: its scores do not move; the retrained models differ.
    assert (
        out["metrics"]["original"]["acc_forget"]["std"] == 0 and out["metrics"]["original"]["grad_residual"]["std"] == 0
    )
    assert not torch.equal(stacked["retrain"][0], stacked["retrain"][1])
    for column in ("original", "neggrad"):
        expected = forget_quality_from_confidences(stacked[column], stacked["retrain"]).score
        assert out["forget_quality"][column] == expected
    assert out["final_score"]["retrain"] == pytest.approx(out["forget_quality"]["retrain"])


def test_over_seeds_each_run_is_the_single_run_of_its_seed_and_the_ceiling_retrains_with_later_seeds(task, user_seeds):
    model, train, test = task
    runs, out = user_seeds
    request = _instance(train)
    alone = unlearn.compare(model, USER_METHODS, **request, test=test, options=FAST, seed=1)
    for column, scores in alone["metrics"].items():
        for key in scores.keys() - {"seconds", "speedup"}:
            assert runs[1][1]["metrics"][column][key] == scores[key], (column, key)

    def retrained(seed):
        result = unlearn.forget(model, "retrain", **request, seed=seed, **FAST["retrain"])
        return model_confidences(result.model, request["forget"])

    ceiling = torch.stack([retrained(seed) for seed in out["reference_seeds"]])
    references = torch.stack([run["confidences"]["retrain"] for _, run in runs])
    assert out["forget_quality"]["retrain"] == forget_quality_from_confidences(references, ceiling).score


def test_over_a_list_of_seeds_the_retrain_function_gets_each_seed_then_the_ceilings(task):
    model, train, test = task
    retrain = _recording_retrain(model)
    out = unlearn.compare(model, "neggrad", **_instance(train), test=test, retrain=retrain, seeds=[5, 9])
    assert [seed for _, seed in retrain.calls] == [5, 9, 10, 11]
    assert out["seeds"] == [5, 9] and out["reference_seeds"] == [10, 11]
    assert all(type(data) is Split for data, _ in retrain.calls)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(seeds=0), ValueError, "seeds must be at least 1, got 0"),
        (dict(seeds=[1, 1]), ValueError, "seeds must be distinct"),
        (dict(seeds="3"), TypeError, "seeds must be an int or a sequence of ints, got str"),
        (dict(seeds=[1, 2], seed=3), ValueError, "seed: with seeds=.* leave seed at 0"),
        (dict(json=3), TypeError, "json must be a path"),
        (dict(plot="/no/such/folder/out.png"), ValueError, "plot: the folder '/no/such/folder' does not exist"),
        (dict(l2=-1.0), ValueError, "l2"),
    ],
)
def test_bad_seeds_and_outputs_are_refused_before_training(task, kwargs, error, match):
    model, train, test = task
    with pytest.raises(error, match=match):
        unlearn.compare(model, "neggrad", **_instance(train), test=test, retrain=_never, **kwargs)


def test_json_and_plot_are_written_from_python(task, tmp_path):
    model, train, test = task
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    out = unlearn.compare(model, "neggrad", **_instance(train), test=test, options=FAST, json=out_json, plot=out_png)
    written = json.loads(out_json.read_text())
    assert written["metrics"] == out["metrics"]
    assert written["confidences"]["neggrad"] == out["confidences"]["neggrad"].tolist()
    assert out_png.read_bytes()[:4] == b"\x89PNG" and out_png.stat().st_size > 1000


def test_a_missing_matplotlib_is_an_import_error_naming_the_extra_before_training(task, monkeypatch):
    model, train, test = task
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'torch-unlearn\[plot\]'"):
        unlearn.compare(model, "neggrad", **_instance(train), test=test, retrain=_never, plot="out.png")


# Plots: a log axis never gets a value <= 0.


def _log_axes_values(fig) -> list[float]:
    """Every bar height, error-bar end and y limit on the figure's log axes (at least one axis)."""
    from matplotlib.container import ErrorbarContainer

    axes = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert axes
    values = []
    for ax in axes:
        values += [patch.get_height() for patch in ax.patches] + [ax.get_ylim()[0]]
        for container in ax.containers:
            if isinstance(container, ErrorbarContainer):
                for lines in container.lines[2]:
                    values += [y for segment in lines.get_segments() for _, y in segment]
    return values


def test_log_axes_clip_zero_and_spread_below_zero_at_a_floor():
    plt = pytest.importorskip("matplotlib.pyplot")
    row = {key: 0.5 for key in ("acc_retain", "acc_forget", "acc_test", "mia_loss_logreg")}
    one_run = {"metrics": {"original": row, "retrain": {**row, "seconds": 0.0}, "m": {**row, "seconds": 0.2}}}
    spread = {key: {"mean": 0.5, "std": 0.1} for key in row}
    summary = {
        "metrics": {
            "original": spread,
            "retrain": {**spread, "seconds": {"mean": 0.01, "std": 0.3}},  # mean - std < 0
            "m": {**spread, "seconds": {"mean": 0.0, "std": None}},
        }
    }
    columns = {name: {**row, "js_divergence": 0.0, "param_distance": 0.0, "grad_residual": 1e-3} for name in "ab"}
    figures = [comparison_figure(one_run), comparison_figure(summary), run_figure(columns, "title")]
    try:
        for fig in figures:
            values = _log_axes_values(fig)
            assert min(values) > 0 and fig._suptitle.get_text()
    finally:
        for fig in figures:
            plt.close(fig)
