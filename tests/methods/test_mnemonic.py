"""Mnemonic codes: the training wrapper, the Fisher ratio and step sizes, and
one-shot class forgetting on the digits with the documented defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

import unlearn
from unlearn.compare import prepare
from unlearn.methods.mnemonic import fisher_ratio, step_sizes
from unlearn.mnemonic_codes import MnemonicCodes, code_split, make_codes


def _pair(gen, n=400, classes=4):
    return torch.rand(n, 1, 5, 5, generator=gen), torch.randint(0, classes, (n,), generator=gen)


# codes and the wrapper -------------------------------------------------------------------


def test_codes_are_seeded_and_follow_their_distribution():
    a, b = make_codes(10, (1, 8, 8), seed=3), make_codes(10, (1, 8, 8), seed=3)
    assert a.shape == (10, 1, 8, 8) and torch.equal(a, b)
    assert not torch.equal(a, make_codes(10, (1, 8, 8), seed=4))
    big = make_codes(4, (5000,), seed=0)
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05
    uniform = make_codes(4, (5000,), distribution="uniform", seed=0)
    assert float(uniform.min()) >= 0 and float(uniform.max()) < 1 and abs(float(uniform.mean()) - 0.5) < 0.02


@pytest.mark.parametrize("t_mix", [0.0, 0.3, 1.0])
def test_wrapper_replaces_about_t_mix_of_the_samples_with_their_class_code(gen, t_mix):
    x, y = _pair(gen)
    data = MnemonicCodes((x, y), t_mix=t_mix, seed=1)
    assert len(data) == len(x) and data.classes == 4
    items = [data[i] for i in range(len(data))]
    replaced = torch.tensor([not torch.equal(xi, x[i]) for i, (xi, _) in enumerate(items)])
    for i, (xi, yi) in enumerate(items):
        assert int(yi) == int(y[i])
        if replaced[i]:
            assert torch.equal(xi, data.codes[y[i]])
    sigma = math.sqrt(len(x) * t_mix * (1 - t_mix))
    assert abs(int(replaced.sum()) - len(x) * t_mix) <= 5 * sigma + 1e-9


def test_wrapper_draw_is_seeded_per_epoch(gen):
    x, y = _pair(gen)

    def mask(data, epoch):
        data.set_epoch(epoch)
        return [not torch.equal(data[i][0], x[i]) for i in range(len(x))]

    first, again = MnemonicCodes((x, y), t_mix=0.5, seed=7), MnemonicCodes((x, y), t_mix=0.5, seed=7)
    assert mask(first, 0) == mask(again, 0)
    assert mask(first, 0) != mask(first, 1)
    # Without set_epoch the draw moves on after every pass.
    fresh = MnemonicCodes((x, y), t_mix=0.5, seed=7)
    passes = [[not torch.equal(fresh[i][0], x[i]) for i in range(len(x))] for _ in range(2)]
    assert passes[0] == mask(again, 0) and passes[1] == mask(again, 1)


def test_wrapper_takes_any_dataset_given_the_class_count(gen):
    x, y = _pair(gen, n=50)
    data = MnemonicCodes(TensorDataset(x, y), classes=4, t_mix=1.0)
    xi, yi = data[3]
    assert torch.equal(xi, data.codes[y[3]]) and int(yi) == int(y[3])
    with pytest.raises(ValueError, match="classes: give the number of classes"):
        MnemonicCodes(TensorDataset(x, y))


def test_mix_replaces_rows_of_a_batch(gen):
    x, y = _pair(gen, n=2000)
    data = MnemonicCodes((x, y), t_mix=0.2, seed=0)
    mixed = data.mix(x, y, torch.Generator().manual_seed(5))
    again = data.mix(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(mixed, again)
    replaced = (mixed != x).flatten(1).any(1)
    assert torch.equal(mixed[replaced], data.codes[y[replaced]])
    assert torch.equal(mixed[~replaced], x[~replaced])
    assert abs(float(replaced.double().mean()) - 0.2) < 5 * math.sqrt(0.2 * 0.8 / 2000)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t_mix=1.5), "t_mix must be >= 0 and <= 1"),
        (dict(distribution="laplace"), "distribution must be one of"),
        (dict(classes=1), "classes must be >= 2"),
    ],
)
def test_wrapper_rejects_bad_settings(gen, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MnemonicCodes(_pair(gen), **kwargs)


def test_code_split_checks_raw_code_tensors():
    split = code_split(torch.zeros(3, 2))
    assert torch.equal(split.labels, torch.arange(3))
    for bad in (
        torch.zeros(3),
        torch.zeros(1, 4),
        torch.full((3, 2), float("nan")),
        torch.zeros(3, 2, dtype=torch.int64),
    ):
        with pytest.raises(ValueError, match="codes must be a finite floating-point tensor"):
            code_split(bad)
    with pytest.raises(TypeError, match="codes must be a MnemonicCodes"):
        code_split([1, 2])


# the ratio and the step sizes ------------------------------------------------------------------


def test_fisher_ratio_in_log_space_and_its_undefined_cases(gen):
    f_f, f_r = torch.rand(50, generator=gen) + 0.1, torch.rand(50, generator=gen) + 0.1
    torch.testing.assert_close(fisher_ratio(f_f, f_r), (f_f / f_r).double())
    tiny = torch.full((3,), 1e-30)  # f_F * f_R underflows float32; the ratio does not
    torch.testing.assert_close(fisher_ratio(tiny * 4, tiny), torch.full((3,), 4.0, dtype=torch.float64))
    eta = fisher_ratio(torch.tensor([0.0, 2.0, 0.0, 3.0]), torch.tensor([0.0, 0.0, 5.0, 1.0]))
    # 0/0 -> 0, x/0 -> the largest finite ratio, 0/x -> 0
    torch.testing.assert_close(eta, torch.tensor([0.0, 3.0, 0.0, 3.0], dtype=torch.float64))
    assert fisher_ratio(torch.tensor([1.0]), torch.tensor([0.0])).tolist() == [0.0]  # nothing finite to take
    floored = fisher_ratio(torch.tensor([2e-16, 0.0]), torch.tensor([0.0, 0.0]), floor=1e-16)
    torch.testing.assert_close(floored, torch.tensor([3.0, 1.0], dtype=torch.float64))


def test_step_sizes_cap_the_largest_move_at_lambda2():
    etas = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([1e6, 5.0]), "c": torch.zeros(2)}
    sizes = step_sizes(etas, lambda1=1e-3, lambda2=10.0)
    assert sizes["a"] == 1e-3 and sizes["b"] == pytest.approx(1e-5) and sizes["c"] == 1e-3
    assert max(sizes[k] * float(e.max()) for k, e in etas.items()) <= 10.0


# on the digits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    return unlearn.train_mnemonic("cnn", seed=0)


def _accuracy(model, split, mask):
    with torch.no_grad():
        return float((model(split.inputs[mask]).argmax(1) == split.labels[mask]).double().mean())


def test_training_with_codes_teaches_the_codes_and_keeps_the_digits(trained):
    model, codes = trained
    test = unlearn.digits().test
    everything = torch.ones(len(test), dtype=torch.bool)
    assert _accuracy(model, codes.split(), torch.ones(codes.classes, dtype=torch.bool)) == 1.0
    assert _accuracy(model, test, everything) >= 0.95
    again, same = unlearn.train_mnemonic("cnn", seed=0)  # from the cache, keyed by the codes
    assert torch.equal(same.codes, codes.codes)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_forgetting_one_digit_class_with_the_defaults(trained):
    model, codes = trained
    test = unlearn.digits().test
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = unlearn.forget(model, "mnemonic", forget_classes=[3], codes=codes)
    gone = test.labels == 3
    assert _accuracy(result.model, test, gone) <= 0.05
    assert _accuracy(result.model, test, ~gone) >= _accuracy(model, test, ~gone) - 0.05
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the caller's model is untouched
    again = unlearn.forget(model, "mnemonic", forget_classes=[3], codes=codes.codes)  # the raw codes do too
    assert all(torch.equal(a, b) for a, b in zip(result.model.state_dict().values(), again.model.state_dict().values()))
    assert result.report["sign"] in "+-" and 0 < result.report["largest_change"] <= 10.0


def test_the_comparison_starts_mnemonic_from_the_model_trained_with_codes(trained):
    model, options = prepare("mnemonic", "cnn", 0)
    assert torch.equal(options["codes"].codes, trained[1].codes)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained[0].state_dict().values()))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(forget_classes=[3]), ValueError, "codes: mnemonic needs"),
        (dict(forget_classes=[3], codes=torch.randn(4, 1, 8, 8)), ValueError, "10 classes but there are 4 codes"),
        (dict(forget_classes=[12], codes="codes"), ValueError, r"\[12\] do not exist"),
        (dict(forget_classes=list(range(10)), codes="codes"), ValueError, "forgetting every class"),
        (dict(forget_classes=[3], codes="codes", lambda2=0.0), ValueError, "lambda2 must be > 0"),
        (dict(forget_classes=[3], codes="codes", fisher_floor=-1.0), ValueError, "fisher_floor must be >= 0"),
        (
            dict(forget=(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64)), codes="codes"),
            ValueError,
            "forgets whole classes",
        ),
        (dict(forget_classes=[3], codes=[0.0]), TypeError, "codes must be a MnemonicCodes"),
    ],
)
def test_bad_requests_raise_clear_errors(trained, kwargs, error, match):
    model, codes = trained
    kwargs = {k: codes if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(error, match=match):
        unlearn.forget(model, "mnemonic", **kwargs)
