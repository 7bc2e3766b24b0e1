"""The `unlearn` command (also `python -m unlearn`).

    unlearn run --method lcodec --forget-samples 10    train or load the digits model,
                                                        unlearn, retrain, evaluate
    unlearn foci                                        FOCI on the digits pixels

Bad requests get a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence

import torch

from . import data as data_module
from . import demo
from .evaluation import evaluate
from .methods import available, forget
from .methods.base import Split
from .training import TRAINING_DEFAULTS, train

# Settings for the embedded digits models (trained with weight decay 5e-4).
# The (epsilon, delta) noise of L-CODEC assumes a strongly convex objective;
# at this l2 its scale would erase the model, so it is opt-in here (--noise).
DIGITS_OPTIONS: dict[str, dict[str, Any]] = {
    "lcodec": {"l2": TRAINING_DEFAULTS["weight_decay"], "damping": 0.1, "noise": False},
}

ROWS = [
    ("acc_retain", "retain accuracy"),
    ("acc_forget", "forget accuracy"),
    ("acc_test", "test accuracy"),
    ("mia_loss_logreg", "MIA loss-logreg (CV acc.)"),
    ("mia_entropy_logreg", "MIA entropy-logreg (member)"),
    ("mia_confidence_svc", "MIA confidence-svc (non-member)"),
    ("js_divergence", "JS divergence to retrained"),
    ("activation_distance", "activation distance to retrained"),
    ("param_distance", "parameter distance to retrained"),
    ("grad_residual", "retained gradient residual"),
    ("grad_norm_forget", "forget gradient norm"),
    ("seconds", "time (s)"),
    ("speedup", "speed-up over retraining"),
]


class UsageError(Exception):
    """A request the command cannot serve; printed as one line, exit code 2."""


def _forget_indices(args: argparse.Namespace, train_split: Split, classes: int) -> torch.Tensor:
    n = len(train_split)
    if args.forget_indices is not None:
        try:
            idx = torch.tensor([int(i) for i in args.forget_indices.split(",") if i.strip()])
        except ValueError:
            raise UsageError(f"--forget-indices must be comma-separated integers, got {args.forget_indices!r}")
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad) or len(idx) == 0:
            raise UsageError(f"--forget-indices must lie in 0..{n - 1}, got {bad.tolist() or 'none'}")
        return idx.unique()
    if args.forget_class is not None:
        if not 0 <= args.forget_class < classes:
            raise UsageError(f"--forget-class must be in 0..{classes - 1}, got {args.forget_class}")
        return torch.nonzero(train_split.labels == args.forget_class)[:, 0]
    if not 1 <= args.forget_samples < n:
        raise UsageError(f"--forget-samples must be in 1..{n - 1}, got {args.forget_samples}")
    g = torch.Generator().manual_seed(args.seed)
    return torch.randperm(n, generator=g)[: args.forget_samples].sort().values


def _split(split: Split, idx: torch.Tensor) -> tuple[Split, Split]:
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[idx] = False
    return Split(split.inputs[idx], split.labels[idx]), Split(split.inputs[keep], split.labels[keep])


def _table(columns: dict[str, dict[str, float]]) -> str:
    names = list(columns)
    width = max(len(label) for _, label in ROWS)
    lines = [f"{'':<{width}}  " + "  ".join(f"{n:>11}" for n in names)]
    for key, label in ROWS:
        if not any(key in c for c in columns.values()):
            continue
        cells = [f"{columns[n][key]:>11.4f}" if key in columns[n] else f"{'-':>11}" for n in names]
        lines.append(f"{label:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _plot(columns: dict[str, dict[str, float]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'torch-unlearn[plot]'")
    labels = dict(ROWS)
    panels = [
        ("accuracy and membership attacks", [k for k, _ in ROWS[:6]], "linear"),
        ("distances and gradients", [k for k, _ in ROWS[6:11]], "log"),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(columns)
    for ax, (title, wanted, scale) in zip(axes, panels):
        keys = [k for k in wanted if all(k in c for c in columns.values())]
        for i, (name, values) in enumerate(columns.items()):
            ax.bar([j + i * width for j in range(len(keys))], [values[k] for k in keys], width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
        ax.set_xticklabels([labels[k] for k in keys], rotation=30, ha="right", fontsize=8)
        ax.set_yscale(scale)
        if scale == "log":
            ax.set_ylim(bottom=1e-6)  # a model's distance to itself is ~0
        ax.set_title(title, fontsize=10)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    digits = data_module.digits()
    idx = _forget_indices(args, digits.train, digits.classes)
    forget_set, retain_set = _split(digits.train, idx)
    stages = tqdm(total=5, desc="train or load model", disable=args.quiet)
    model = train(args.model, seed=args.seed)
    # torch loads parts of itself on the first torch.func call: pay that before timing.
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))
    stages.update()
    options = dict(DIGITS_OPTIONS.get(args.method, {}))
    if args.noise:
        options["noise"] = True
    classes = [args.forget_class] if args.forget_class is not None else None
    stages.set_description(f"unlearn ({args.method})")
    result = forget(model, args.method, forget=forget_set, retain=retain_set, forget_classes=classes, seed=args.seed, **options)
    stages.update()
    stages.set_description("retrain (reference)")
    reference = forget(model, "retrain", forget=forget_set, retain=retain_set, seed=args.seed)
    stages.update()
    columns = {}
    for name, m in (("original", model), ("unlearned", result.model), ("retrained", reference.model)):
        stages.set_description(f"evaluate {name}")
        columns[name] = evaluate(m, forget=forget_set, retain=retain_set, test=digits.test, reference=reference.model, l2=TRAINING_DEFAULTS["weight_decay"], seed=args.seed)
        if name == "original":
            stages.update()
    stages.update()
    stages.close()
    columns["unlearned"]["seconds"] = result.seconds
    columns["retrained"]["seconds"] = reference.seconds
    columns["unlearned"]["speedup"] = reference.seconds / result.seconds
    report = {k: v for k, v in result.report.items() if k != "per_sample_columns"}
    return {"method": args.method, "model": args.model, "forget_indices": idx.tolist(), "metrics": columns, "report": report}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn", description="Make a trained PyTorch model forget data.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="unlearn on the embedded digits data and compare with retraining")
    r.add_argument("--method", default="lcodec", help=f"one of: {', '.join(available())}")
    r.add_argument("--model", default="cnn", choices=["cnn", "mlp", "logreg"])
    which = r.add_mutually_exclusive_group()
    which.add_argument("--forget-samples", type=int, default=10, help="forget this many random training samples")
    which.add_argument("--forget-indices", help="comma-separated training-sample indices to forget")
    which.add_argument("--forget-class", type=int, help="forget every training sample of this class")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--noise", action="store_true", help="add L-CODEC's (epsilon, delta) Gaussian noise")
    r.add_argument("--json", help="write the metrics and the report to this file")
    r.add_argument("--plot", help="write a bar chart (PNG) to this file")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("foci", help="FOCI on the digits pixels: which pixels carry the label")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "foci":
            demo.main()
            return 0
        if args.method not in available():
            raise UsageError(f"unknown method {args.method!r}; available: {', '.join(available())}")
        out = run(args)
        print(f"\n{args.method} on digits ({args.model}), forgetting {len(out['forget_indices'])} training samples")
        print(_table(out["metrics"]))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2, default=str)
        if args.plot:
            _plot(out["metrics"], args.plot)
    except (UsageError, ValueError, TypeError, ImportError) as error:
        print(f"unlearn: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
