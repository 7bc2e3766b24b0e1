"""The forget-quality audit end to end, on the digits and on a user's model."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from unlearn import data
from unlearn.audit import audit, audit_request
from unlearn.cli import main


@pytest.fixture(scope="module")
def class_audit():
    return audit(["finetune", "neggrad_plus"], forget_class=3, models=4, arch="logreg")


def test_a_class_audit_reports_every_row_between_its_anchors(class_audit):
    rows = class_audit.rows
    assert list(rows) == ["original", "retrain", "finetune", "neggrad_plus"]
    for name, row in rows.items():
        assert 0.0 <= row["forget_quality"] <= 1.0
        assert 0.0 <= row["lira_auc"] <= 1.0
        assert len(class_audit.epsilons[name]) == class_audit.info["forget_examples"]
        for key in ("acc_retain", "acc_forget", "acc_test", "acc_test_kept"):
            assert 0.0 <= row[key]["mean"] <= 1.0 and row[key]["std"] >= 0.0
    # The originals classify the forgotten class, retrained models cannot: the
    # per-example distributions are told apart and doing nothing scores below
    # retraining against retraining.
    assert rows["original"]["acc_forget"]["mean"] > 0.9
    assert rows["retrain"]["acc_forget"]["mean"] == 0.0
    assert rows["original"]["forget_quality"] < rows["retrain"]["forget_quality"]
    assert rows["original"]["lira_auc"] > 0.9
    assert rows["original"]["seconds"] is None and rows["retrain"]["speedup"] == pytest.approx(1.0)


def test_the_result_prints_serialises_and_plots(class_audit, tmp_path):
    table = class_audit.table()
    for name in class_audit.rows:
        assert name in table
    assert "+-" in table and "class 3" in table
    payload = json.loads(json.dumps(class_audit.to_dict()))
    assert payload["rows"]["retrain"]["forget_quality"] == class_audit.rows["retrain"]["forget_quality"]
    pytest.importorskip("matplotlib")
    class_audit.plot(str(tmp_path / "audit.png"))
    assert (tmp_path / "audit.png").stat().st_size > 10_000


def test_mislabelled_requests_relabel_the_training_data():
    request = audit_request(mislabelled=20, seed=5)
    train = data.digits().train
    assert len(request.forget) == 20 and len(request.retain) == len(train) - 20
    wrong = request.train.labels != train.labels
    assert int(wrong.sum()) == 20
    assert torch.equal(request.train.inputs[wrong], request.forget.inputs)
    assert torch.equal(request.train.labels[wrong], request.forget.labels)
    again = audit_request(mislabelled=20, seed=5)
    assert torch.equal(again.forget.labels, request.forget.labels)
    assert len(audit_request(forget_fraction=0.01).forget) == round(0.01 * len(train))


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=generator)
    inputs = torch.randn(n, 4, generator=generator) + 3 * nn.functional.one_hot(labels, 4).float()
    return inputs, labels


def train_linear(data, seed):
    """A user's training function: a linear classifier of the blobs, seeded."""
    inputs, labels = data
    torch.manual_seed(seed)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return model


def test_a_users_model_is_audited_with_its_own_training():
    calls = []

    def train_fn(data, seed):
        calls.append((len(data[1]), seed))
        return train_linear(data, seed)

    inputs, labels = _blobs(300, 0)
    forget, retain = (inputs[:10], labels[:10]), (inputs[10:], labels[10:])
    result = audit(["finetune"], train_fn=train_fn, forget=forget, retain=retain, test=_blobs(100, 1), models=3)
    assert calls[:3] == [(300, 0), (300, 1), (300, 2)]  # originals: retain and forget, one seed each
    assert calls[3:] == [(290, seed) for seed in range(6)]  # references, then the ceiling
    assert set(result.rows) == {"original", "retrain", "finetune"}
    assert result.info["arch"] is None and result.info["forget_examples"] == 10


def test_worker_processes_train_the_same_models():
    inputs, labels = _blobs(200, 0)
    request = dict(forget=(inputs[:8], labels[:8]), retain=(inputs[8:], labels[8:]), test=_blobs(50, 1), models=2)
    serial = audit(["finetune"], train_fn=train_linear, **request)
    parallel = audit(["finetune"], train_fn=train_linear, workers=2, **request)
    for name in serial.rows:
        assert torch.equal(serial.epsilons[name], parallel.epsilons[name])
        assert serial.rows[name]["acc_test"] == parallel.rows[name]["acc_test"]
    with pytest.raises(ValueError, match="top level of an importable module"):
        audit(["finetune"], train_fn=lambda data, seed: train_linear(data, seed), workers=2, **request)


def test_a_failing_method_is_reported_and_the_others_still_run(monkeypatch):
    from unlearn.audit import runner

    real = runner.run_method

    def flaky(model, name, **kwargs):
        if name == "neggrad":
            raise ValueError("diverged")
        return real(model, name, **kwargs)

    monkeypatch.setattr(runner, "run_method", flaky)
    result = audit(["neggrad", "finetune"], forget_samples=5, models=2, arch="logreg")
    assert result.failed == {"neggrad": "ValueError: diverged"}
    assert "finetune" in result.rows and "neggrad" not in result.rows
    assert "neggrad: failed, ValueError: diverged" in result.table()


def test_bad_requests_are_refused_before_training():
    with pytest.raises(ValueError, match="models must be at least 2"):
        audit(forget_samples=5, models=1)
    with pytest.raises(ValueError, match="arch must be one of"):
        audit(forget_samples=5, models=2, arch="resnet")
    with pytest.raises(ValueError, match="give exactly one of"):
        audit(forget_samples=5, forget_class=2, models=2)
    with pytest.raises(ValueError, match="forget is for your own model"):
        audit(forget=_blobs(5, 0), models=2)
    with pytest.raises(ValueError, match="forget_class describes a digits request"):
        audit(forget_class=1, train_fn=lambda data: nn.Linear(4, 3), models=2)
    with pytest.raises(ValueError, match="ssd has no option 'alpah'"):
        audit(["ssd"], forget_samples=5, models=2, options={"ssd": {"alpah": 1}})
    with pytest.raises(ValueError, match="mnemonic.*needs"):
        x, y = _blobs(20, 0)
        audit(["mnemonic"], train_fn=lambda d: nn.Linear(4, 3), retain=(x, y), test=(x, y), forget_classes=[1])
    with pytest.raises(ValueError, match="mislabelled must be an integer"):
        audit_request(mislabelled=0)
    with pytest.raises(ValueError, match="forget_fraction must be a number"):
        audit_request(forget_fraction=1.5)


def test_the_audit_command(tmp_path, capsys):
    out = tmp_path / "audit.json"
    code = main(
        ["audit", "--methods", "finetune", "--forget-samples", "5", "--models", "2", "--model", "logreg"]
        + ["--json", str(out), "--quiet"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 random samples, 2 models per side" in printed and "finetune" in printed
    assert set(json.loads(out.read_text())["rows"]) == {"original", "retrain", "finetune"}
    assert main(["audit", "--mislabelled", "0", "--models", "2"]) == 2
    assert "--mislabelled must be an integer" in capsys.readouterr().err
    assert main(["audit", "--models", "1", "--model", "logreg"]) == 2
