"""Every method with its defaults on models the library was not tuned on,
trained as a user would (Adam, no weight decay): a 1-D CNN on MNIST-1D, a
ResNet-18 at CIFAR shape (synthetic class patterns plus noise: a cost and
robustness check, not a claim about CIFAR) and a digits MLP. Each is audited
against models retrained by the same user training function: forget quality
F, accuracies (mean +- std over N models) and time against retraining.

    python benchmarks/bench_models.py [--models N] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import unlearn
from common import command, machine, table, write_section
from unlearn.models import MLP, MNIST1DCNN, ResNet18

# name -> (build a model, epochs, batch size, learning rate)
RECIPES = {
    "mnist1d-cnn": (MNIST1DCNN, 30, 100, 1e-2),
    "resnet18": (lambda: ResNet18(width=16), 8, 64, 1e-2),
    "digits-mlp": (MLP, 40, 64, 1e-2),
}


def _cifar_shaped(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return patterns[labels] + torch.randn(samples, 3, 32, 32, generator=generator), labels


def _data(name: str, quick: bool) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    if name == "mnist1d-cnn":
        data = unlearn.data.mnist1d()
    elif name == "digits-mlp":
        data = unlearn.digits()
    else:
        samples = 300 if quick else 1000
        return _cifar_shaped(samples, 1), _cifar_shaped(samples // 2, 2)
    return (data.train.inputs, data.train.labels), (data.test.inputs, data.test.labels)


def trainer(name: str):
    """The user's training function of model `name`: seeded Adam, no weight decay."""
    build, epochs, batch_size, lr = RECIPES[name]

    def train_fn(data: tuple[torch.Tensor, torch.Tensor], seed: int) -> nn.Module:
        inputs, labels = data
        torch.manual_seed(seed)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(order) - 1, batch_size):
                rows = order[start : start + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(model(inputs[rows]), labels[rows]).backward()
                optimizer.step()
        return model.eval()

    return train_fn


def _row(name: str, method: str, row: dict, ceiling: float) -> list[str]:
    def cell(key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value['mean']:.3f} +- {value['std']:.3f}"

    speed = "-" if row.get("speedup") is None else f"{row['speedup']:.1f}x"
    seconds = "-" if row.get("seconds") is None else f"{row['seconds']:.2f}"
    test = cell("acc_test_kept") if "acc_test_kept" in row else cell("acc_test")
    return [
        name,
        method,
        f"{row['forget_quality']:.3f} / {ceiling:.3f}",
        cell("acc_retain"),
        cell("acc_forget"),
        test,
        seconds,
        speed,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="models per side")
    parser.add_argument("--quick", action="store_true", help="smaller ResNet data")
    args = parser.parse_args()
    sections = []
    for name in RECIPES:
        train, test = _data(name, args.quick)
        order = torch.randperm(len(train[1]), generator=torch.Generator().manual_seed(0))
        forget, retain = order[:10], order[10:]
        requests = {
            "10 random samples": dict(forget=(train[0][forget], train[1][forget])),
            "class 3": dict(forget_classes=[3]),
        }
        rows = []
        for title, request in requests.items():
            retained = (train[0][retain], train[1][retain]) if "forget" in request else train
            start = time.perf_counter()
            result = unlearn.audit(
                "all", train_fn=trainer(name), retain=retained, test=test, models=args.models, **request
            )
            minutes = (time.perf_counter() - start) / 60
            ceiling = result.rows["retrain"]["forget_quality"]
            rows += [_row(name, f"{method} ({title})", row, ceiling) for method, row in result.rows.items()]
            rows += [
                [name, f"{method} ({title})", "failed: " + why, "", "", "", "", ""]
                for method, why in result.failed.items()
            ]
            print(result.table(), f"\naudit time {minutes:.1f} min", flush=True)
        sections.append(
            f"### {name}\n\n"
            + table(
                [
                    "model",
                    "method (request)",
                    "F / ceiling",
                    "retain acc",
                    "forget acc",
                    "test acc",
                    "time (s)",
                    "vs retrain",
                ],
                rows,
            )
        )
        _write(sections, args.models)


def _write(sections: list[str], models: int) -> None:
    """Rewrite the section after every model, so a long run keeps what it finished."""
    body = "\n\n".join(
        [
            "## Methods on models the library was not tuned on (cpu)",
            f"Machine: {machine()}\nCommand: `{command()}`",
            f"N = {models} models per side, each trained by the user-style function (Adam, no weight decay); "
            "F against the references, next to retraining against retraining (the ceiling).",
            *sections,
        ]
    )
    write_section("bench_models:cpu", body)


if __name__ == "__main__":
    main()
