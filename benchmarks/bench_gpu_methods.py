"""The methods where users run them: every method against retraining with the
model and data on one device (the digits CNN and a ResNet-18 at CIFAR shape,
one class and 10 random samples), and one L-CODEC request on a full-width
ResNet-18 (4810 units, 1000 perturbed copies), stage by stage, with the
default `memory_budget` and, on a GPU, a larger one. Synthetic CIFAR-shaped
data: a cost measurement, not a quality claim.

    python benchmarks/bench_gpu_methods.py [--device cuda] [--quick] [--only methods|lcodec]
"""

from __future__ import annotations

import argparse

import torch

import unlearn
from bench_models import _cifar_shaped
from common import command, machine, median_seconds, table, write_section
from unlearn.curvature import MAX_BYTES
from unlearn.methods import applicable, describe, forget
from unlearn.models import ResNet18

EPOCHS = {"resnet18": 4}  # retraining (and the fine-tuning baselines) on the synthetic set
LARGE_BUDGET = 8 << 30  # on a GPU with memory to spare: larger batches, and a dense curvature where it fits


def _task(name: str, device: torch.device, quick: bool):
    if name == "digits-cnn":
        data = unlearn.digits()
        model, train = unlearn.train("cnn"), (data.train.inputs, data.train.labels)
    else:
        train = _cifar_shaped(500 if quick else 5000, 1)
        model = ResNet18(width=16 if quick else 64)
        unlearn.training.fit(
            model.to(device),
            unlearn.Split(train[0].to(device), train[1].to(device)),
            epochs=1 if quick else EPOCHS[name],
            lr=0.05,
            weight_decay=5e-4,
            batch_size=128,
            seed=0,
        )
    return model.to(device).eval(), (train[0].to(device), train[1].to(device))


def method_rows(name: str, task, device: torch.device) -> list[list[str]]:
    """Each method's median time (one run after a warm-up) against retraining's."""
    model, (x, y) = task
    sync = device.type == "cuda"
    rows = []
    for kind in ("class", "instance"):
        if kind == "class":
            keep = y != 3
            request = {"forget": (x[~keep], y[~keep]), "forget_classes": [3]}
        else:
            keep = torch.ones_like(y, dtype=torch.bool)
            keep[:10] = False
            request = {"forget": (x[:10], y[:10])}
        request["retain"] = (x[keep], y[keep])
        options = {"epochs": EPOCHS[name]} if name in EPOCHS else {}
        base = median_seconds(lambda: forget(model, "retrain", seed=0, **request, **options), 1, sync)
        for method in applicable(kind):
            if method == "retrain" or "mnemonic_codes" in describe(method)["needs"]:
                continue
            extra = options if method in ("finetune", "neggrad_plus", "random_label") else {}
            seconds = median_seconds(lambda: forget(model, method, seed=0, **request, **extra), 1, sync)
            rows.append([name, f"{kind} ({'class 3' if kind == 'class' else '10 samples'})", method,
                         f"{base:.2f}", f"{seconds:.3f}", f"{base / seconds:.1f}x"])  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)  # as it goes: a run stopped early keeps its rows
    return rows


def lcodec_rows(task, device: torch.device, quick: bool) -> list[list[str]]:
    """One L-CODEC request on the ResNet-18 for each budget: its median time
    over three runs after a warm-up, and the stages of the last."""
    model, (x, y) = task
    units = unlearn.units.Units(model).columns
    copies = 100 if quick else 1000
    request = dict(forget=(x[:1], y[:1]), retain=(x[1:], y[1:]), perturbations=copies, max_select=16)
    rows = []
    for budget in [MAX_BYTES] + ([LARGE_BUDGET] if device.type == "cuda" else []):
        results = []
        run = lambda: results.append(forget(model, "lcodec", seed=0, memory_budget=budget, **request))  # noqa: E731
        seconds = median_seconds(run, 3, device.type == "cuda")
        timings = results[-1].report["timings"]
        stages = ", ".join(f"{stage} {t:.3f}" for stage, t in timings.items())
        picked = len(results[-1].report["per_sample_columns"][0])
        size = f"{units} units, {copies} copies, budget {budget >> 20} MiB"
        rows.append([size, f"{timings['select']:.3f}", f"{seconds:.2f}", f"{picked}", stages])
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["methods", "lcodec"], help="one of the two parts (default: both)")
    args = parser.parse_args()
    device = torch.device(args.device)
    resnet = _task("resnet18", device, args.quick)
    parts = [
        f"## Methods on the {device.type.upper()}",
        "",
        f"Machine: {machine(device.type)}",
        f"Command: `{command()}`",
    ]
    if args.only != "lcodec":
        rows = method_rows("digits-cnn", _task("digits-cnn", device, args.quick), device)
        rows += method_rows("resnet18", resnet, device)
        parts += ["", table(["model", "request", "method", "retrain (s)", "method (s)", "vs retrain"], rows)]
    if args.only != "methods":
        lcodec = lcodec_rows(resnet, device, args.quick)
        parts += [
            "",
            "One L-CODEC request on a ResNet-18 (one forget sample, at most 16 picks; "
            "`forget()` end to end, its checks included):",
            "",
            table(["size", "unit selection (s)", "request (s)", "picks", "stages (s)"], lcodec),
        ]
    body = "\n".join(parts) + "\n"
    print(body, flush=True)
    suffix = (":quick" if args.quick else "") + (f":{args.only}" if args.only else "")
    write_section(f"bench_gpu_methods:{device.type}{suffix}", body)


if __name__ == "__main__":
    main()
