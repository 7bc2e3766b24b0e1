"""Batched ensemble training: every model as one-at-a-time training would
train it (up to float rounding), cached per seed, and refusing what it cannot do."""

from __future__ import annotations

import pytest
import torch

from unlearn import Split, data
from unlearn.ensemble import fit_ensemble, has_random_layers, train_ensemble
from unlearn.mnemonic_codes import MnemonicCodes
from unlearn.models import build
from unlearn.training import fit, fresh

SETTINGS = dict(epochs=2, lr=0.05, weight_decay=5e-4, batch_size=64)
SEEDS = [3, 7, 11]


def _small_train() -> Split:
    train = data.digits().train
    return Split(train.inputs[:400], train.labels[:400])


def _state_difference(first: torch.nn.Module, second: torch.nn.Module) -> float:
    pairs = zip(first.state_dict().values(), second.state_dict().values())
    return max(float((a.double() - b.double()).abs().max()) for a, b in pairs)


@pytest.mark.parametrize("arch", ["logreg", "mlp", "cnn"])
def test_each_model_is_the_one_fit_trains_alone(arch):
    split = _small_train()
    alone = [fresh(arch, seed) for seed in SEEDS]
    alone_losses = [fit(model, split, seed=seed, **SETTINGS) for model, seed in zip(alone, SEEDS)]
    together = [fresh(arch, seed) for seed in SEEDS]
    together_losses = fit_ensemble(together, split, seeds=SEEDS, group=len(SEEDS), **SETTINGS)  # batched
    for first, second in zip(alone, together):
        assert _state_difference(first, second) < 1e-4  # BatchNorm running statistics included
    torch.testing.assert_close(torch.tensor(together_losses), torch.tensor(alone_losses), rtol=1e-4, atol=1e-6)
    # The seeds matter: two models of the ensemble are not the same model.
    assert _state_difference(together[0], together[1]) > 1e-2


def test_groups_of_models_train_as_one_ensemble_does():
    split = _small_train()
    whole = [fresh("cnn", seed) for seed in SEEDS]
    fit_ensemble(whole, split, seeds=SEEDS, group=len(SEEDS), **SETTINGS)
    grouped = [fresh("cnn", seed) for seed in SEEDS]
    fit_ensemble(grouped, split, seeds=SEEDS, group=2, **SETTINGS)  # a group of two, then one of one
    for first, second in zip(whole, grouped):
        assert _state_difference(first, second) < 1e-4
    with pytest.raises(ValueError, match="group"):
        fit_ensemble(grouped, split, seeds=SEEDS, group=0, **SETTINGS)


def test_convolutional_models_train_one_at_a_time_on_the_cpu_by_default():
    split = _small_train()
    alone, together = fresh("cnn", 3), [fresh("cnn", 3), fresh("cnn", 7)]
    fit(alone, split, seed=3, **SETTINGS)
    fit_ensemble(together, split, seeds=[3, 7], **SETTINGS)
    assert _state_difference(alone, together[0]) == 0.0  # exactly fit's result: no batched kernels


def test_mnemonic_mixing_draws_each_models_own_stream():
    split = _small_train()
    codes = MnemonicCodes(split, t_mix=0.3, seed=0)
    alone = [fresh("mlp", seed) for seed in SEEDS]
    for model, seed in zip(alone, SEEDS):
        fit(model, split, seed=seed, mnemonic=codes, **SETTINGS)
    together = [fresh("mlp", seed) for seed in SEEDS]
    fit_ensemble(together, split, seeds=SEEDS, mnemonic=codes, group=len(SEEDS), **SETTINGS)
    for first, second in zip(alone, together):
        assert _state_difference(first, second) < 1e-4


def test_models_with_dropout_are_trained_one_at_a_time_exactly():
    split = _small_train()
    assert has_random_layers(build("vgg")) and not has_random_layers(build("cnn"))
    alone, together = fresh("vgg", 1), [fresh("vgg", 1), fresh("vgg", 2)]
    fit(alone, split, seed=1, epochs=1, lr=0.05, weight_decay=5e-4, batch_size=64)
    fit_ensemble(together, split, seeds=[1, 2], epochs=1, lr=0.05, weight_decay=5e-4, batch_size=64)
    assert _state_difference(alone, together[0]) == 0.0


def test_modes_are_restored_and_the_models_are_trained_in_place():
    split = _small_train()
    models = [fresh("cnn", seed).eval() for seed in SEEDS[:2]]
    before = [m.state_dict()["0.weight"].clone() for m in models]
    fit_ensemble(models, split, seeds=SEEDS[:2], group=2, **SETTINGS)
    assert all(not module.training for m in models for module in m.modules())
    assert all(not torch.equal(b, m.state_dict()["0.weight"]) for b, m in zip(before, models))


def test_train_ensemble_caches_each_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_CACHE_DIR", str(tmp_path))
    split = _small_train()
    first = train_ensemble("logreg", [0, 1], split=split, epochs=1)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    trained = []

    def counting(models, *args, **kwargs):
        trained.append(len(models))
        return fit_ensemble(models, *args, **kwargs)

    monkeypatch.setattr("unlearn.ensemble.fit_ensemble", counting)
    again = train_ensemble("logreg", [0, 1, 2], split=split, epochs=1)
    assert trained == [1]  # only the new seed is trained
    for a, b in zip(first, again):
        assert _state_difference(a, b) == 0.0
    other_data = train_ensemble("logreg", [0], split=Split(split.inputs[:300], split.labels[:300]), epochs=1)
    assert trained == [1, 1] and _state_difference(other_data[0], first[0]) > 0


def test_bad_arguments_are_refused_naming_them():
    split = _small_train()
    with pytest.raises(ValueError, match="seeds"):
        fit_ensemble([fresh("mlp", 0), fresh("mlp", 1)], split, seeds=[0], **SETTINGS)
    with pytest.raises(ValueError, match=r"models\[1\] is not the architecture"):
        fit_ensemble([fresh("mlp", 0), fresh("cnn", 1)], split, seeds=[0, 1], **SETTINGS)
    with pytest.raises(ValueError, match="models is empty"):
        fit_ensemble([], split, seeds=[], **SETTINGS)
    with pytest.raises(TypeError, match="models must be a list"):
        fit_ensemble(fresh("mlp", 0), split, seeds=[0], **SETTINGS)
    with pytest.raises(ValueError, match="epochs"):
        fit_ensemble([fresh("mlp", 0), fresh("mlp", 1)], split, seeds=[0, 1], **{**SETTINGS, "epochs": 0})
    with pytest.raises(ValueError, match="seeds must be a non-empty"):
        train_ensemble("mlp", [], cache=False)
