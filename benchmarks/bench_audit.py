"""What the forget-quality audit costs: N digits models trained as one
batched ensemble against one at a time (side by side, same seeds), and the
wall time of a whole audit of one method (N originals, 2N references, N
unlearning runs) from an empty model cache. With `--device cuda`, the
ensemble training alone, models and data on the GPU (the audit itself trains
on the CPU).

    python benchmarks/bench_audit.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

import unlearn
from common import command, machine, table, write_section
from unlearn.audit import audit
from unlearn.ensemble import fit_ensemble
from unlearn.training import TRAINING_DEFAULTS, fit, fresh

ONE_AT_A_TIME_GPU = 4


def _seconds(fn, device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ensemble_rows(quick: bool, device: torch.device) -> list[list[str]]:
    """One training each way (a training is seconds to minutes: one run, not a
    median). On a GPU, where one model at a time is bound by kernel launches,
    the first ONE_AT_A_TIME_GPU models are trained one at a time and the total
    scaled to N."""
    train = unlearn.digits().train
    split = unlearn.Split(train.inputs.to(device), train.labels.to(device))
    rows = []
    for arch, count in [("logreg", 64), ("mlp", 64), ("cnn", 8 if quick else 64)]:
        seeds = list(range(count))
        timed = seeds if device.type == "cpu" else seeds[:ONE_AT_A_TIME_GPU]
        if device.type == "cuda":  # the device's one-time start-up, not training
            fit(fresh(arch, 0).to(device), split, seed=0, **TRAINING_DEFAULTS)
        one = _seconds(
            lambda: [fit(fresh(arch, s).to(device), split, seed=s, **TRAINING_DEFAULTS) for s in timed], device
        ) * (count / len(timed))
        models = [fresh(arch, s).to(device) for s in seeds]
        # group=count: all batched, even the CNN that fit_ensemble trains one at a time by default on a CPU.
        together = _seconds(lambda: fit_ensemble(models, split, seeds=seeds, group=count, **TRAINING_DEFAULTS), device)
        rows.append(
            [
                arch,
                str(count),
                f"{one:.1f}",
                f"{one / count:.2f}",
                f"{together:.1f}",
                f"{together / (one / count):.1f}x one model",
                f"{one / together:.1f}x",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    return rows


def audit_rows(quick: bool) -> list[list[str]]:
    """Whole audits from an empty cache: training included."""
    count = 8 if quick else 32
    rows = []
    for method in ["lcodec", "ssd"]:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["UNLEARN_CACHE_DIR"] = cache
            start = time.perf_counter()
            result = audit([method], forget_samples=10, models=count, arch="cnn")
            seconds = time.perf_counter() - start
        row = result.rows[method]
        rows.append(
            [
                f"`{method}`, 10 random samples, cnn",
                str(count),
                f"{seconds:.0f}",
                f"{row['seconds'] * count:.0f}",
                f"{row['forget_quality']:.3f} (ceiling {result.rows['retrain']['forget_quality']:.3f})",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer CNN models")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    parts = [
        f"## Forget-quality audit ({device.type})",
        f"Machine: {machine(device.type)}\nCommand: `{command()}`",
        "### Batched ensemble training against one model at a time (digits, the default recipe)"
        + ("" if device.type == "cpu" else f"\n\nOne at a time: {ONE_AT_A_TIME_GPU} models timed, scaled to N."),
        table(
            ["model", "N", "one at a time (s)", "per model (s)", "ensemble (s)", "ensemble costs", "speed-up"],
            ensemble_rows(args.quick, device),
        ),
    ]
    if device.type == "cpu":
        parts += [
            "### One audit from an empty model cache (N originals, 2N references, N unlearning runs)",
            table(["audit", "N", "wall time (s)", "of which unlearning (s)", "F"], audit_rows(args.quick)),
        ]
    body = "\n\n".join(parts)
    print(body)
    write_section(f"bench_audit:{device.type}", body)


if __name__ == "__main__":
    main()
