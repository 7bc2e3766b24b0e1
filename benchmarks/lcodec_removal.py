"""L-CODEC's removal step with its defaults on models trained as a user would
(Adam, no weight decay): does it lower the retained-gradient residual, and
does it move the forget samples' losses toward those of models retrained
without them? Beside it, the former defaults (the retained-data gradient,
one label drawn per sample on 512 samples, no rise of the retained
objective allowed).

    python benchmarks/lcodec_removal.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import unlearn
from common import command, machine, table, write_section
from unlearn import Split
from unlearn.models import MNIST1DCNN, ResNet18

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's user-style models
from tests.user_models import adam, mnist1d_cnn, resnet18  # noqa: E402

FORGET, SEEDS = 20, 3
FORMER = dict(gradient="retain", fisher="model", curvature_samples=512, line_search_slack=0.0)


def _digits_mlp(train: Split, seed: int) -> nn.Module:
    """The digits MLP fitted by 150 full-batch Adam steps."""
    torch.manual_seed(seed)
    model = unlearn.models.build("mlp")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        optimizer.zero_grad()
        F.cross_entropy(model(train.inputs), train.labels).backward()
        optimizer.step()
    return model.eval()


def _models():
    digits = unlearn.digits()
    yield "digits MLP (full-batch Adam)", _digits_mlp(digits.train, 0), digits.train, digits.test, _digits_mlp
    cnn = mnist1d_cnn()

    def cnn_again(train: Split, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return adam(MNIST1DCNN(), train, epochs=15, batch_size=100, lr=1e-2, seed=seed)

    yield "MNIST-1D CNN", cnn.model, cnn.train, cnn.test, cnn_again
    res = resnet18()

    def resnet_again(train: Split, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return adam(ResNet18(width=4), train, epochs=6, batch_size=50, lr=1e-2, seed=seed)

    yield "ResNet-18 (width 4, 150 samples)", res.model, res.train, res.test, resnet_again


def _forget_loss(model: nn.Module, split: Split) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(split.inputs).double(), split.labels, reduction="none")


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    for name, model, train, test, retrain in _models():
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        forget = Split(train.inputs[order[:FORGET]], train.labels[order[:FORGET]])
        retain = Split(train.inputs[order[FORGET:]], train.labels[order[FORGET:]])
        references = [retrain(retain, seed) for seed in range(SEEDS)]
        target = torch.stack([_forget_loss(m, forget) for m in references]).mean(0)

        def scores(m: nn.Module) -> dict[str, float]:
            return unlearn.evaluate(m, forget=forget, retain=retain, test=test, attacks=False)

        original = scores(model)
        runs = {}
        for label, options in (("defaults", {}), ("former", FORMER)):
            start = time.perf_counter()
            result = unlearn.forget(model, "lcodec", forget=forget, retain=retain, seed=0, **options)
            runs[label] = (result.model, time.perf_counter() - start)
        residual = lambda m: scores(m)["grad_residual"]  # noqa: E731
        loss = {key: _forget_loss(m, forget) for key, (m, _) in runs.items()}
        before = _forget_loss(model, forget)
        closer = float(((loss["defaults"] - target).abs() < (before - target).abs()).double().mean())
        rows.append(
            [
                name,
                f"{original['grad_residual']:.4g}",
                f"{residual(runs['defaults'][0]):.4g}",
                f"{sum(residual(m) for m in references) / SEEDS:.4g}",
                f"{float(before.mean()):.3f}",
                f"{float(loss['defaults'].mean()):.3f}",
                f"{float(target.mean()):.3f}",
                f"{closer:.2f}",
                f"{original['acc_test']:.3f} / {scores(runs['defaults'][0])['acc_test']:.3f}",
                f"{residual(runs['former'][0]):.4g}, {float(loss['former'].mean()):.3f}",
                f"{runs['defaults'][1]:.1f} / {runs['former'][1]:.1f}",
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "model",
        "residual: original",
        "lcodec",
        "retrained",
        "forget loss: original",
        "lcodec",
        "retrained",
        "share of samples moved closer",
        "test acc: original / lcodec",
        "former defaults: residual, forget loss",
        "seconds: defaults / former",
    ]
    body = "\n\n".join(
        [
            "## L-CODEC's removal step on models trained with Adam (cpu)",
            f"Machine: {machine()}\nCommand: `{command()}`",
            f"{FORGET} random training samples forgotten; retrained: the same training on the retained samples, "
            f"{SEEDS} seeds (mean). Residual: norm of the retained cross-entropy's gradient over every parameter.",
            table(header, rows),
        ]
    )
    write_section("lcodec_removal:cpu", body)


if __name__ == "__main__":
    main()
