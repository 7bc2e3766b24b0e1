"""The embedded default: digits split, small models, seeded training and its cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import unlearn
from unlearn import data, models, training
from unlearn._core import Split


@pytest.fixture(scope="module")
def digits() -> data.TrainTest:
    return data.digits()


@pytest.fixture(scope="module")
def defaults_cache(tmp_path_factory) -> Path:
    """A private cache dir holding the default CNN and MLP, trained once for this module."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARN_CACHE_DIR", str(path))
        unlearn.train("cnn")
        unlearn.train("mlp")
    return path


def accuracy(model: torch.nn.Module, split: Split) -> float:
    with torch.no_grad():
        return float((model(split.inputs).argmax(1) == split.labels).double().mean())


def test_split_shapes_and_ranges(digits):
    assert digits.classes == 10
    assert len(digits.train) + len(digits.test) == 1797
    assert len(digits.test) == 450
    for split in (digits.train, digits.test):
        assert split.inputs.shape == (len(split), 1, 8, 8)
        assert split.inputs.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert float(split.inputs.min()) == 0.0 and float(split.inputs.max()) == 1.0
        assert set(split.labels.tolist()) == set(range(10))


def test_split_is_stratified_and_disjoint(digits):
    train_counts = torch.bincount(digits.train.labels, minlength=10)
    test_counts = torch.bincount(digits.test.labels, minlength=10)
    totals = train_counts + test_counts
    assert torch.equal(test_counts, torch.round(0.25 * totals.double()).long())
    rows = {tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(digits.train.inputs, digits.train.labels)}
    overlap = sum(
        tuple(x.flatten().tolist()) + (int(y),) in rows for x, y in zip(digits.test.inputs, digits.test.labels)
    )
    assert overlap <= 2  # the raw data holds a couple of duplicate images, never the same sample twice


def test_split_is_the_same_every_call(digits):
    again = data.digits()
    assert torch.equal(again.train.inputs, digits.train.inputs) and torch.equal(again.test.labels, digits.test.labels)
    assert again.fingerprint == digits.fingerprint
    again.train.inputs.zero_()  # fresh tensors: changing one call's data leaves the next intact
    assert torch.equal(data.digits().train.inputs, digits.train.inputs)


def test_digits_without_scikit_learn_says_what_to_install(monkeypatch):
    data._load.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'torch-unlearn\[data\]'"):
            data.digits()
    finally:
        data._load.cache_clear()


@pytest.mark.parametrize("name", ["logreg", "mlp", "cnn", "vgg"])
def test_every_model_maps_a_batch_to_ten_scores(name, digits):
    model = models.build(name)
    assert model(digits.test.inputs[:5]).shape == (5, 10)


def test_cifar_resnet18_has_the_standard_shape_and_size():
    model = models.ResNet18().eval()
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert "resnet18" not in models.ARCHITECTURES and models.ResNet18 not in models.ARCHITECTURES.values()
    small = models.ResNet18(classes=7, width=8).eval()
    with torch.no_grad():
        assert small(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    with pytest.raises(ValueError, match="width"):
        models.ResNet18(width=0)
    with pytest.raises(TypeError, match="classes"):
        models.ResNet18(classes=10.0)


def test_build_rejects_unknown_names():
    with pytest.raises(ValueError, match="'logreg', 'mlp', 'cnn', 'vgg'"):
        models.build("resnet")
    with pytest.raises(TypeError, match="name"):
        models.build(3)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(tmp_path / "mine"))
    assert training.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("UNLEARN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert training.cache_dir() == tmp_path / "xdg" / "torch-unlearn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert training.cache_dir() == tmp_path / ".cache" / "torch-unlearn"


def test_train_caches_and_second_call_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(tmp_path))
    first = unlearn.train("logreg", epochs=2)
    assert len(list(tmp_path.glob("logreg-*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(training, "fit", no_training)
    second = unlearn.train("logreg", epochs=2)
    assert not second.training
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value)
    with pytest.raises(AssertionError, match="cached"):
        unlearn.train("logreg", epochs=2, seed=1)  # another configuration is another file


@pytest.mark.parametrize("arch", ["mlp", "vgg"])  # vgg trains with dropout
def test_train_without_cache_writes_nothing_and_is_deterministic(monkeypatch, tmp_path, arch):
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(tmp_path))
    state = torch.random.get_rng_state()
    first = unlearn.train(arch, epochs=2, cache=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # no global RNG side effects
    torch.rand(3)  # moves the global RNG: training must not depend on it
    second = unlearn.train(arch, epochs=2, cache=False)
    assert not any(tmp_path.iterdir())
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    other = unlearn.train(arch, epochs=2, cache=False, seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters()))


def test_default_models_reach_their_accuracy(monkeypatch, defaults_cache, digits):
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(defaults_cache))
    monkeypatch.setattr(training, "fit", None)  # loads from the cache, trains nothing
    assert accuracy(unlearn.train("cnn"), digits.test) >= 0.95
    assert accuracy(unlearn.train("mlp"), digits.test) >= 0.93


def test_reinitialize_is_seeded_and_resets_batchnorm(digits):
    model = models.build("cnn")
    training.fit(model, digits.train, epochs=1, lr=0.05, weight_decay=0.0, batch_size=256, seed=0)
    assert float(model[1].running_mean.abs().sum()) > 0
    training.reinitialize(model, 3)
    assert float(model[1].running_mean.abs().sum()) == 0
    weights = model[0].weight.clone()
    training.reinitialize(model, 3)
    assert torch.equal(model[0].weight, weights)
    training.reinitialize(model, 4)
    assert not torch.equal(model[0].weight, weights)


def test_fit_restores_modes_and_rejects_bad_settings(digits):
    model = models.build("logreg").eval()
    losses = training.fit(model, digits.train, epochs=2, lr=0.1, weight_decay=0.0, batch_size=128, seed=0)
    assert len(losses) == 2 and losses[1] < losses[0]
    assert not model.training
    settings = dict(epochs=1, lr=0.1, weight_decay=0.0, batch_size=32, seed=0)
    for name, bad, error in [
        ("epochs", 0, ValueError),
        ("lr", -1.0, ValueError),
        ("weight_decay", float("nan"), ValueError),
        ("batch_size", 2.5, TypeError),
        ("seed", "0", TypeError),
    ]:
        with pytest.raises(error, match=name):
            training.fit(model, digits.train, **{**settings, name: bad})
    with pytest.raises(TypeError, match="split"):
        training.fit(model, "digits", **settings)
