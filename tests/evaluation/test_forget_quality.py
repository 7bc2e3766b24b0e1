"""forget_quality(): the NeurIPS 2023 challenge's forget quality F on synthetic
models whose confidences are drawn from known distributions, its epsilons and
buckets, the final score, data handling, modes and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import unlearn
from tests.devices import on_devices
from unlearn.evaluation import (
    ForgetQuality,
    accuracy_ratio,
    final_score,
    forget_confidences,
    forget_quality,
    forget_quality_from_confidences,
    logit_confidence,
    model_confidences,
)
from unlearn.evaluation.quality import EPSILON_CAP, _epsilon_table, _points


class FixedConfidence(nn.Module):
    """A "model" of the forget examples 0..M-1: input i (its first feature)
    gets logits (0, c_i), so the logit-scaled confidence of label 1 is c_i.
    In train mode its dropout would scramble the outputs."""

    def __init__(self, confidences: torch.Tensor):
        super().__init__()
        self.register_buffer("confidences", confidences.double())
        self.dropout = nn.Dropout(0.5)
        self.batch_sizes: list[int] = []
        self.modes: set[bool] = set()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(inputs.shape[0])
        self.modes.add(self.training)
        c = self.dropout(self.confidences[inputs[:, 0].long()])
        return torch.stack([torch.zeros_like(c), c], 1)


def draws(models: int, examples: int, shift: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidences (models, examples) of both sides: example j is N(mu_j, s_j)
    under the retrained models and N(mu_j + shift * s_j, s_j) under the
    unlearned ones, with mu_j and s_j drawn per example."""
    g = torch.Generator().manual_seed(seed)
    mean = 2 * torch.randn(examples, generator=g, dtype=torch.float64)
    spread = 0.5 + torch.rand(examples, generator=g, dtype=torch.float64)
    unlearned = mean + spread * (shift + torch.randn(models, examples, generator=g, dtype=torch.float64))
    retrained = mean + spread * torch.randn(models, examples, generator=g, dtype=torch.float64)
    return unlearned, retrained


def synthetic(unlearned: torch.Tensor, retrained: torch.Tensor):
    """Models returning the given confidences, and the forget data (inputs are the example indices, labels 1)."""
    examples = unlearned.shape[1]
    forget = (torch.arange(examples, dtype=torch.float32)[:, None], torch.ones(examples, dtype=torch.long))
    return [FixedConfidence(c) for c in unlearned], [FixedConfidence(c) for c in retrained], forget


def test_identical_distributions_score_what_the_metric_gives_them():
    result = forget_quality(*synthetic(*draws(32, 100)))
    assert isinstance(result, ForgetQuality)
    # Far from 1, as expected of the metric at this N: the estimated rates
    # are multiples of 1/32 and the largest epsilon over ~160,000 rules is
    # kept, so two samples of one distribution still yield epsilons of log 2
    # to about 2.5, median about log 5 = 1.6 (1/8 of a point), and F about
    # 0.18. Ten seeds give 0.165 to 0.189 at N = 32 and 0.168 to 0.195 at
    # N = 64 (the released code gives the same values).
    assert result.score == pytest.approx(0.18125, abs=1e-12)
    assert 0.69 < float(result.epsilons.min()) and float(result.epsilons.max()) < 3.0
    assert 0.15 < forget_quality(*synthetic(*draws(64, 100, seed=1))).score < 0.22  # 0.1706


def test_the_score_falls_as_the_sides_drift_apart():
    # Shifts of the unlearned side in units of each example's spread.
    scores = [forget_quality(*synthetic(*draws(32, 40, shift=shift))).score for shift in (0, 0.5, 1, 2, 4, 12)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] == 0.0  # separated: a single threshold makes no error, epsilon is capped
    # Observed: 0.1625, 0.1292, 0.0698, 0.0227, 0.0091, 0.


def test_separated_or_constant_sides_score_zero():
    unlearned, retrained = draws(16, 30)
    separated = forget_quality(*synthetic(unlearned + 100, retrained))
    assert separated.score == 0.0 and bool((separated.epsilons == EPSILON_CAP).all())
    # An unlearned side that collapsed to one value: far peakier than the
    # retrained spread, the released metric caps its epsilon outright.
    constant = forget_quality(*synthetic(torch.full_like(unlearned, 1.5), retrained))
    assert constant.score == 0.0 and bool((constant.epsilons == EPSILON_CAP).all())
    assert bool((constant.points == 0).all())


def test_identical_point_masses_are_indistinguishable():
    # Both sides one value: no rule on the grid tells them apart (the released
    # code aborts on this example); epsilon 0, the full point.
    same = torch.full((8, 5), 0.25, dtype=torch.float64)
    result = forget_quality(*synthetic(same, same.clone()))
    assert result.score == 1.0 and bool((result.epsilons == 0).all())


def test_matches_the_released_metric_on_a_fixed_input():
    rng = np.random.default_rng(2023)
    base, spread = rng.normal(0, 2, size=12), rng.uniform(0.5, 1.5, size=12)
    unlearned = base + spread * (0.7 + rng.normal(size=(10, 12)))
    retrained = base + spread * rng.normal(size=(10, 12))
    result = forget_quality_from_confidences(torch.tensor(unlearned), torch.tensor(retrained))
    # The released metric.py (run on the CPU, its final assert made a length
    # check) gives F = 0.140625 and these epsilons (it computes rates in float32).
    released = [1.6094179, 1.3862693, 1.6094179, 1.0985789, 1.6094179, 1.6094179]
    released += [1.7917428, 1.6094179, 2.1972134, 1.9458959, 1.9458959, 1.7917428]
    assert result.score == 0.140625
    assert result.epsilons.tolist() == pytest.approx(released, abs=1e-6)
    assert result.labels is None and result.delta == 1e-5


def test_epsilons_of_the_error_counts_and_their_buckets():
    delta = 1e-5
    table = _epsilon_table(4, delta)
    # One false positive and two false negatives out of 4 per side.
    assert table[1, 2] == pytest.approx(max(math.log((0.75 - delta) / 0.5), math.log((0.5 - delta) / 0.25)))
    assert table[0, 0] == math.inf  # no error at all: perfectly separated
    assert np.isnan(table[0, 2]) and np.isnan(table[3, 0])  # one rate at zero: left out
    assert table[4, 4] != table[4, 4]  # both rates 1: both bounds undefined
    assert table[2, 2] == 0.0  # a coin flip disproves nothing
    # 32 models: buckets of half a unit up to ceil(log 31) = 4, the points halving per bucket.
    epsilons = np.array([0.0, 0.49, 0.5, 1.2, 3.99, 4.0, EPSILON_CAP])
    assert _points(epsilons, 32).tolist() == [1, 1, 0.5, 0.25, 1 / 128, 0, 0]
    assert _points(epsilons, 2).tolist() == [0] * 7  # log(1) = 0: no bucket at all


def test_the_result_holds_what_a_plot_needs():
    unlearned, retrained = draws(6, 9, shift=1)
    result = forget_quality(*synthetic(unlearned, retrained), delta=1e-3)
    assert result.unlearned_confidences.shape == result.retrained_confidences.shape == (6, 9)
    assert torch.allclose(result.unlearned_confidences, unlearned)
    assert torch.allclose(result.retrained_confidences, retrained)
    assert result.epsilons.shape == result.points.shape == result.labels.shape == (9,)
    assert result.points.mean().item() == pytest.approx(result.score) and result.delta == 1e-3


def test_a_dataloader_is_read_batch_by_batch_once_and_may_shuffle():
    unlearned, retrained = draws(6, 30, shift=0.5)
    models_u, models_r, (inputs, labels) = synthetic(unlearned, retrained)
    whole = forget_quality(models_u, models_r, (inputs, labels))
    for model in models_u + models_r:
        model.batch_sizes.clear()
    torch.manual_seed(5)
    before = torch.get_rng_state()
    read = forget_quality(models_u, models_r, DataLoader(TensorDataset(inputs, labels), batch_size=7, shuffle=True))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(max(m.batch_sizes) <= 7 and sum(m.batch_sizes) == 30 for m in models_u + models_r)
    # Shuffled, yet every model scored the same example in each column.
    first = whole.unlearned_confidences[0].tolist()
    order = [first.index(value) for value in read.unlearned_confidences[0].tolist()]
    assert sorted(order) == list(range(30)) and order != list(range(30))
    assert torch.equal(read.unlearned_confidences, whole.unlearned_confidences[:, order])
    assert torch.equal(read.retrained_confidences, whole.retrained_confidences[:, order])
    assert torch.equal(read.epsilons, whole.epsilons[order]) and read.score == pytest.approx(whole.score, abs=1e-12)


@on_devices
def test_models_run_on_their_device(device):
    unlearned, retrained = draws(4, 10, shift=1)
    models_u, models_r, (inputs, labels) = synthetic(unlearned, retrained)
    models_u, models_r = [m.to(device) for m in models_u], [m.to(device) for m in models_r]
    result = forget_quality(models_u, models_r, (inputs.to(device), labels.to(device)))
    assert result.epsilons.device.type == result.unlearned_confidences.device.type == "cpu"
    torch.testing.assert_close(result.unlearned_confidences, unlearned)
    assert result.score == forget_quality_from_confidences(unlearned, retrained).score


def test_models_run_in_eval_mode_and_their_modes_are_restored():
    models_u, models_r, forget = synthetic(*draws(4, 5))
    models_u[1].eval()  # the others are in train mode
    models_r[0].dropout.eval()  # a submodule's own mode
    modes = {m: (m.training, m.dropout.training) for m in models_u + models_r}
    forget_quality(models_u, models_r, forget)
    assert all(m.modes == {False} for m in models_u + models_r)
    assert {m: (m.training, m.dropout.training) for m in models_u + models_r} == modes


def test_the_confidence_is_exact_where_p_rounds_to_one():
    logits = torch.tensor([[0.0, 800.0], [800.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    conf = logit_confidence(logits, torch.tensor([1, 1, 1, 1]))
    assert conf.dtype == torch.float64 and torch.isfinite(conf).all()
    assert conf.tolist() == pytest.approx([800.0, -800.0, 1.0, -4.0])
    three = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    p = torch.softmax(three, 1)[0, 0]
    assert logit_confidence(three, torch.tensor([0])).item() == pytest.approx(float(torch.log(p / (1 - p))))


def test_one_models_confidences_are_read_in_eval_mode_and_its_mode_is_restored():
    confidences = draws(1, 9)[0][0]
    model = FixedConfidence(confidences)  # in train mode, its dropout would scramble the confidences
    inputs, labels = synthetic(confidences[None], confidences[None])[2]
    whole = model_confidences(model, (inputs, labels))
    assert whole.dtype == torch.float64 and whole.device.type == "cpu" and whole.shape == (9,)
    torch.testing.assert_close(whole, confidences)
    assert model.modes == {False} and model.training and model.dropout.training
    batched = model_confidences(model, DataLoader(TensorDataset(inputs, labels), batch_size=4))
    assert torch.equal(batched, whole) and model.batch_sizes[-3:] == [4, 4, 1]
    with pytest.raises(TypeError, match="model"):
        model_confidences("model", (inputs, labels))


def test_final_score_is_f_times_both_accuracy_ratios():
    assert accuracy_ratio([0.9, 0.8], [1.0, 0.7]) == pytest.approx(0.85 / 0.85)
    assert accuracy_ratio(0.45, 0.9) == pytest.approx(0.5)
    assert final_score(0.2, 0.5, 0.8) == pytest.approx(0.08)
    assert final_score(0.2, 1.25, 1.0) == pytest.approx(0.25)  # not capped, as in the released code
    result = forget_quality_from_confidences(*draws(4, 3))
    assert final_score(result, 1.0, 1.0) == result.score
    with pytest.raises(ValueError, match="forget_score"):
        final_score(1.5, 1.0, 1.0)
    with pytest.raises(ValueError, match="test_accuracy_ratio"):
        final_score(0.5, 1.0, -0.1)
    with pytest.raises(TypeError, match="retain_accuracy_ratio"):
        final_score(0.5, "1", 1.0)
    with pytest.raises(ValueError, match="retrained"):
        accuracy_ratio([0.5], [0.0, 0.0])
    with pytest.raises(ValueError, match="unlearned"):
        accuracy_ratio([1.5], [0.5])


def test_bad_arguments_are_refused_naming_them():
    models_u, models_r, forget = synthetic(*draws(3, 4))
    with pytest.raises(TypeError, match="unlearned"):
        forget_quality(models_u[0], models_r, forget)
    with pytest.raises(ValueError, match="unlearned must hold at least 2"):
        forget_quality(models_u[:1], models_r[:1], forget)
    with pytest.raises(ValueError, match="retrained must hold as many"):
        forget_quality(models_u, models_r[:2], forget)
    with pytest.raises(TypeError, match=r"retrained\[1\]"):
        forget_quality(models_u, [models_r[0], "model", models_r[2]], forget)
    with pytest.raises(ValueError, match="delta"):
        forget_quality(models_u, models_r, forget, delta=1.0)
    with pytest.raises(TypeError, match="forget"):
        forget_quality(models_u, models_r, forget[0])
    with pytest.raises(ValueError, match="forget: labels must lie in 0..1"):
        forget_quality(models_u, models_r, (forget[0], forget[1] + 1))
    with pytest.raises(ValueError, match="forget is empty"):
        forget_quality(models_u, models_r, DataLoader(TensorDataset(forget[0][:0], forget[1][:0]), batch_size=2))
    with pytest.raises(ValueError, match=r"unlearned\[0\] must have at least 2 outputs"):
        forget_quality([nn.Linear(1, 1), *models_u[1:]], models_r, forget)
    broken = FixedConfidence(torch.full((4,), float("nan")))
    with pytest.raises(ValueError, match=r"retrained\[2\] returned non-finite"):
        forget_quality(models_u, models_r[:2] + [broken], forget)
    with pytest.raises(ValueError, match="unlearned_confidences must have shape"):
        forget_quality_from_confidences(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="retrained_confidences must have the shape"):
        forget_quality_from_confidences(torch.zeros(3, 3), torch.zeros(2, 3))


def test_exported():
    assert unlearn.evaluation.forget_quality is forget_quality
    assert forget_confidences is unlearn.evaluation.forget_confidences
    assert model_confidences is unlearn.evaluation.model_confidences
