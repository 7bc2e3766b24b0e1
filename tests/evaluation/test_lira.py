"""lira_attack(): the per-example likelihood-ratio attack on synthetic models
whose confidences are drawn from known distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearn
from tests.evaluation.test_forget_quality import draws, synthetic
from unlearn.evaluation import LiraResult, lira_attack, lira_from_confidences
from unlearn.evaluation.lira import _auc, _tpr_at_fpr


def test_identical_distributions_cannot_be_told_apart():
    result = lira_attack(*synthetic(*draws(32, 100)))
    assert isinstance(result, LiraResult)
    assert result.auc == pytest.approx(0.5, abs=0.03)
    assert result.tpr_at_1pct_fpr < 0.05 and result.tpr_at_01pct_fpr < 0.02
    assert float(result.example_auc.mean()) == pytest.approx(0.5, abs=0.03)
    fixed = lira_from_confidences(result.unlearned_confidences, result.retrained_confidences, fix_variance=True)
    assert fixed.auc == pytest.approx(0.5, abs=0.03)


def test_separated_distributions_are_told_apart():
    result = lira_attack(*synthetic(*draws(32, 100, shift=4)))
    assert result.auc > 0.97 and result.tpr_at_1pct_fpr > 0.5
    assert float(result.example_auc.min()) > 0.9
    # Recognisable whichever way the unlearned side moved.
    assert lira_from_confidences(*draws(32, 100, shift=-4)).auc > 0.97


def test_the_attack_grows_with_the_shift():
    aucs = [lira_from_confidences(*draws(16, 50, shift=shift)).auc for shift in (0, 0.5, 1, 2, 4)]
    assert all(a < b for a, b in zip(aucs, aucs[1:])), aucs


def test_tprs_lie_in_0_1_and_grow_with_the_fpr_level():
    levels = (0.5, 0.1, 0.05, 0.01, 0.001, 0.0001)
    for shift in (0, 1, 3):
        result = lira_from_confidences(*draws(16, 40, shift=shift), fpr_levels=levels)
        assert sorted(result.tpr_at_fpr) == sorted(levels)
        tprs = [result.tpr_at_fpr[level] for level in sorted(levels)]
        assert all(0.0 <= t <= 1.0 for t in tprs)
        assert all(a <= b for a, b in zip(tprs, tprs[1:])), tprs
        assert 0.0 <= float(result.example_auc.min()) and float(result.example_auc.max()) <= 1.0


def test_the_result_is_determined_by_the_inputs():
    unlearned, retrained = draws(8, 12, shift=1)
    first = lira_attack(*synthetic(unlearned, retrained))
    second = lira_from_confidences(unlearned, retrained)
    assert first.auc == pytest.approx(second.auc) and first.tpr_at_fpr == pytest.approx(second.tpr_at_fpr)
    torch.testing.assert_close(first.member_scores, second.member_scores)
    again = lira_from_confidences(unlearned, retrained)
    assert again.auc == second.auc and torch.equal(again.nonmember_scores, second.nonmember_scores)
    assert first.member_scores.shape == first.nonmember_scores.shape == (8, 12)
    assert first.labels.shape == (12,) and second.labels is None


def test_no_attacked_model_is_in_a_fit():
    unlearned, retrained = draws(6, 5, shift=0.5)
    result = lira_from_confidences(unlearned, retrained, folds=3)
    u, r = unlearned.numpy(), retrained.numpy()
    for i in range(6):
        fit = np.arange(6) % 3 != i % 3  # model i is attacked with the folds it is not in
        for c, scores in ((u[i], result.member_scores[i]), (r[i], result.nonmember_scores[i])):
            unlearned_fit = -0.5 * ((c - u[fit].mean(0)) / u[fit].std(0)) ** 2 - np.log(u[fit].std(0))
            retrained_fit = -0.5 * ((c - r[fit].mean(0)) / r[fit].std(0)) ** 2 - np.log(r[fit].std(0))
            assert scores.numpy() == pytest.approx(unlearned_fit - retrained_fit)


def test_calibrated_when_nothing_tells_the_sides_apart():
    # Within a fold, members and non-members are exchangeable under
    # identical distributions, whatever the number of folds.
    for folds in (2, 4, 16):
        aucs = [lira_from_confidences(*draws(16, 40, seed=seed), folds=folds).auc for seed in range(4)]
        assert np.mean(aucs) == pytest.approx(0.5, abs=0.02), (folds, aucs)


def test_auc_and_tpr_on_small_cases():
    positives, negatives = np.array([3.0, 2.0, 2.0, 0.0]), np.array([2.0, 1.0, 0.0, -1.0])
    pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
    assert _auc(positives, negatives) == pytest.approx(np.mean(pairs))
    assert _tpr_at_fpr(positives, negatives, 0.0) == 0.25  # only 3.0 is above every negative
    assert _tpr_at_fpr(positives, negatives, 0.25) == 0.75  # the threshold 2.0 lets one negative through
    assert _tpr_at_fpr(positives, negatives, 0.5) == 0.75


def test_constant_sides():
    same = torch.full((6, 4), 2.0, dtype=torch.float64)
    tied = lira_from_confidences(same, same.clone())
    assert tied.auc == 0.5 and tied.tpr_at_1pct_fpr == 0.0
    apart = lira_from_confidences(same + 1, same.clone())
    assert apart.auc == 1.0 and apart.tpr_at_01pct_fpr == 1.0


def test_models_modes_are_restored():
    models_u, models_r, forget = synthetic(*draws(4, 4))
    models_r[2].eval()
    models_u[0].dropout.eval()
    modes = [(m.training, m.dropout.training) for m in models_u + models_r]
    lira_attack(models_u, models_r, forget)
    assert all(m.modes == {False} for m in models_u + models_r)
    assert [(m.training, m.dropout.training) for m in models_u + models_r] == modes


def test_bad_arguments_are_refused_naming_them():
    models_u, models_r, forget = synthetic(*draws(4, 4))
    with pytest.raises(ValueError, match="fpr_levels"):
        lira_attack(models_u, models_r, forget, fpr_levels=(0.01, 1.5))
    with pytest.raises(TypeError, match="fpr_levels"):
        lira_attack(models_u, models_r, forget, fpr_levels=0.01)
    with pytest.raises(ValueError, match="folds"):
        lira_from_confidences(*draws(3, 4), folds=2)  # a fit of 1 model
    with pytest.raises(ValueError, match="folds"):
        lira_from_confidences(*draws(8, 3), folds=9)
    with pytest.raises(TypeError, match="folds"):
        lira_from_confidences(*draws(8, 3), folds=2.0)
    with pytest.raises(TypeError, match="fix_variance"):
        lira_attack(models_u, models_r, forget, fix_variance=1)
    with pytest.raises(ValueError, match="retrained must hold as many"):
        lira_attack(models_u, models_r[:3], forget)
    with pytest.raises(TypeError, match=r"unlearned\[0\]"):
        lira_attack([None, *models_u[1:]], models_r, forget)
    with pytest.raises(TypeError, match="forget"):
        lira_attack(models_u, models_r, [1, 2, 3])
    with pytest.raises(TypeError, match="unlearned_confidences"):
        lira_from_confidences(np.zeros((3, 3)), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="retrained_confidences must hold finite"):
        lira_from_confidences(torch.zeros(3, 3), torch.full((3, 3), float("inf")))


def test_exported():
    assert unlearn.evaluation.lira_attack is lira_attack
