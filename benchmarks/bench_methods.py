"""The methods side by side on one class request of the digits CNN (time of
each against retraining; svd_projection also on the VGG-style net), and the
hot spots of the seed methods against the straightforward way: Gram + eigh
against an SVD, the low-rank projection against the explicit d x d one,
batched PGD restarts against one loop per restart, and the vectorised
diagonal Fisher against one backward per sample.

    python benchmarks/bench_methods.py [--quick]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import unlearn
from common import command, machine, median_seconds, table, write_section
from unlearn import Split
from unlearn.compare import compare_digits, digits_request
from unlearn.curvature import diagonal_fisher
from unlearn.methods.l2ul import targeted_pgd
from unlearn.methods.svd_projection import importance_basis, project_weight


def comparison_rows(quick: bool) -> list[list[str]]:
    request = digits_request(unlearn.digits(), forget_class=3)
    runs = [("cnn", "svd_projection,mnemonic,ssd,fisher" if quick else "all"), ("vgg", "svd_projection")]
    rows = []
    for arch, methods in runs:
        metrics = compare_digits(methods, request, arch=arch)["metrics"]
        base = metrics["retrain"]["seconds"]
        rows += [
            [
                f"`{name}` (class 3, {arch})",
                f"{base:.2f}",
                f"{m['seconds']:.3f}",
                f"{base / m['seconds']:.1f}x",
                f"forget-class test acc {m['acc_test_forget']:.2f}, other classes {m['acc_test_retain']:.3f}",
            ]
            for name, m in metrics.items()
            if name not in ("original", "retrain")
        ]
    return rows


def svd_rows(quick: bool) -> list[list[str]]:
    g = torch.Generator().manual_seed(0)
    n, d = (4000, 1152) if quick else (10000, 2304)
    rows = torch.randn(n, d, generator=g, dtype=torch.float64)
    t_svd = median_seconds(lambda: torch.linalg.svd(rows.T, full_matrices=False))
    t_eigh = median_seconds(lambda: importance_basis(rows, 100.0))
    wide = 2048 if quick else 4096
    w = torch.randn(64, wide, generator=g, dtype=torch.float64)
    kept = importance_basis(torch.randn(300, wide, generator=g, dtype=torch.float64), 100.0)
    gone = importance_basis(torch.randn(100, wide, generator=g, dtype=torch.float64), 3.0)

    def explicit():
        m_r = (kept[0] * kept[1]) @ kept[0].T
        m_f = (gone[0] * gone[1]) @ gone[0].T
        return w @ (torch.eye(wide, dtype=torch.float64) - (m_f - m_f @ m_r)).T

    err = float((explicit() - project_weight(w, kept, gone)).abs().max())
    t_explicit = median_seconds(explicit)
    t_low = median_seconds(lambda: project_weight(w, kept, gone))
    return [
        [
            f"layer spaces: SVD vs Gram + eigh, {n} patches x d={d}",
            f"{t_svd:.3f}",
            f"{t_eigh:.3f}",
            f"{t_svd / t_eigh:.1f}x",
            "",
        ],
        [
            f"projection: explicit d x d vs low-rank, d={wide}",
            f"{t_explicit:.3f}",
            f"{t_low:.4f}",
            f"{t_explicit / t_low:.0f}x",
            f"max difference {err:.1e}",
        ],
    ]


def pgd_rows(quick: bool) -> list[list[str]]:
    digits, model = unlearn.digits(), unlearn.train("cnn")
    k, restarts, steps = (8, 10, 20) if quick else (16, 20, 100)
    x = digits.train.inputs[:k].repeat_interleave(restarts, 0)
    targets = (digits.train.labels[:k].repeat_interleave(restarts) + 1 + torch.arange(k * restarts) % 9) % 10
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    t_batch = median_seconds(lambda: targeted_pgd(model, x, targets, 1.0, 0.025, steps, None, gen()), repeats=1)
    t_loop = median_seconds(
        lambda: [
            targeted_pgd(model, x[i : i + 1], targets[i : i + 1], 1.0, 0.025, steps, None, gen()) for i in range(len(x))
        ],
        repeats=1,
    )
    return [
        [
            f"l2ul PGD: one run per restart vs all batched ({k} x {restarts} restarts, {steps} steps)",
            f"{t_loop:.2f}",
            f"{t_batch:.2f}",
            f"{t_loop / t_batch:.0f}x",
            "",
        ]
    ]


def fisher_rows(quick: bool) -> list[list[str]]:
    digits, model = unlearn.digits(), unlearn.train("cnn")
    n = 200 if quick else 1000
    split = Split(digits.train.inputs[:n], digits.train.labels[:n])

    def loop():
        total = [torch.zeros_like(p) for p in model.parameters()]
        for i in range(n):
            grads = torch.autograd.grad(
                F.cross_entropy(model(split.inputs[i : i + 1]), split.labels[i : i + 1]), list(model.parameters())
            )
            for t, g in zip(total, grads):
                t += g.square() / n
        return total

    t_loop = median_seconds(loop, repeats=1)
    t_vec = median_seconds(lambda: diagonal_fisher(model, split))
    return [
        [
            f"diagonal Fisher, {n} samples: one backward per sample vs vectorised",
            f"{t_loop:.2f}",
            f"{t_vec:.3f}",
            f"{t_loop / t_vec:.0f}x",
            "",
        ]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))  # torch's one-time lazy imports
    rows = comparison_rows(args.quick) + svd_rows(args.quick) + pgd_rows(args.quick) + fisher_rows(args.quick)
    body = "\n".join(
        [
            "## Methods (cpu)",
            "",
            f"Machine: {machine()}",
            f"Command: `{command()}`",
            "Class rows are `unlearn compare` runs on the digits CNN and, for `svd_projection`, the VGG-style net "
            "(reference = retraining that model; `mnemonic` starts from the model trained with codes, whose training "
            "is not counted).",
            "",
            table(["case", "reference (s)", "ours (s)", "speed-up", "note"], rows),
            "",
        ]
    )
    print(body)
    write_section("bench_methods:cpu" + (":quick" if args.quick else ""), body)


if __name__ == "__main__":
    main()
