"""The `unlearn` command (also `python -m unlearn`).

    unlearn run --method lcodec --forget-samples 10    train or load the digits model,
                                                        unlearn, retrain, evaluate
    unlearn compare --methods all --forget-class 3      every applicable method side by side
    unlearn compare --methods all --seeds 4             the same over 4 model seeds: mean +- std,
                                                        forget quality F, final score
    unlearn foci                                        FOCI on the digits pixels

Bad requests (the command's usage errors and the library's ValueErrors) get
a one-line error and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Optional, Sequence

from . import data as data_module
from . import demo, models
from .audit import AuditResult
from .audit import audit as run_audit
from .compare import Request, compare_digits, compare_digits_seeds, digits_request, run_digits
from .methods import available

ROWS = [
    ("acc_retain", "retain accuracy"),
    ("acc_forget", "forget accuracy"),
    ("acc_test", "test accuracy"),
    ("acc_test_retain", "test accuracy, other classes"),
    ("acc_test_forget", "test accuracy, forgotten classes"),
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


# The request's parameters as the command spells them, for the library's messages.
FLAGS = {
    "forget_samples": "--forget-samples",
    "forget_indices": "--forget-indices",
    "forget_class": "--forget-class",
    "forget_fraction": "--forget-fraction",
    "mislabelled": "--mislabelled",
}


def _digits() -> data_module.Digits:
    try:
        return data_module.digits()
    except ImportError as error:
        raise UsageError(str(error)) from error


def _indices(args: argparse.Namespace) -> Optional[list[int]]:
    if args.forget_indices is None:
        return None
    try:
        return [int(i) for i in args.forget_indices.split(",") if i.strip()]
    except ValueError as error:
        raise UsageError(f"--forget-indices must be comma-separated integers, got {args.forget_indices!r}") from error


def _flagged(error: ValueError) -> UsageError:
    """The library's message with the argument's name spelled as the flag."""
    message = str(error)
    name = next((name for name in FLAGS if message.startswith(name)), None)
    return UsageError(FLAGS[name] + message[len(name) :] if name else message)


def _request(args: argparse.Namespace) -> Request:
    indices = _indices(args)
    samples = args.forget_samples if indices is None and args.forget_class is None else None
    try:
        return digits_request(
            _digits(), forget_samples=samples, forget_indices=indices, forget_class=args.forget_class, seed=args.seed
        )
    except ValueError as error:
        raise _flagged(error) from error


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


# Columns of the comparison table: (metric, header, what to show for a class / an instance request).
COMPARE_COLUMNS = [
    ("acc_retain", "retain", "both"),
    ("acc_forget", "forget", "both"),
    ("acc_test", "test", "instance"),
    ("acc_test_retain", "test other", "class"),
    ("acc_test_forget", "test forgot", "class"),
    ("mia_loss_logreg", "MIA loss", "both"),
    ("mia_entropy_logreg", "MIA entropy", "both"),
    ("mia_confidence_svc", "MIA conf", "both"),
    ("js_divergence", "JS to retrain", "both"),
    ("seconds", "time (s)", "both"),
    ("speedup", "vs retrain", "both"),
]


def _compare_columns(kind: str) -> list[tuple[str, str]]:
    return [(key, head) for key, head, show in COMPARE_COLUMNS if show in ("both", kind)]


def _grid(heads: list[str], rows: dict[str, list[str]]) -> str:
    """One line per method: its name, then its cells right-aligned under the
    heads, each column at least 13 characters wide."""
    width = max(len(name) for name in rows)
    widths = [max(13, len(head), *(len(cells[i]) for cells in rows.values())) for i, head in enumerate(heads)]
    lines = [f"{'method':<{width}}  " + "  ".join(f"{head:>{w}}" for head, w in zip(heads, widths))]
    for name, cells in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)))
    return "\n".join(lines)


def _number(key: str, value: float) -> str:
    return f"{value:.1f}x" if key == "speedup" else f"{value:.4f}"


def _compare_table(metrics: dict[str, dict[str, float]], kind: str) -> str:
    columns = _compare_columns(kind)
    rows = {
        name: [_number(key, values[key]) if key in values else "-" for key, _ in columns]
        for name, values in metrics.items()
    }
    return _grid([head for _, head in columns], rows)


def _spread(key: str, summary: dict[str, float]) -> str:
    """A compact "mean+-std" cell: 3 decimals, a speed-up's 1 and its "x" at the end."""
    digits = 1 if key == "speedup" else 3
    cell = f"{summary['mean']:.{digits}f}+-{summary['std']:.{digits}f}"
    return cell + "x" if key == "speedup" else cell


def _seeds_table(out: dict[str, Any], kind: str) -> str:
    """The comparison over seeds: "mean+-std" cells, then F and the final score."""
    columns = _compare_columns(kind)
    rows = {}
    for name, values in out["metrics"].items():
        cells = [_spread(key, values[key]) if key in values else "-" for key, _ in columns]
        rows[name] = cells + [f"{out['forget_quality'][name]:.3f}", f"{out['final_score'][name]:.3f}"]
    return _grid([head for _, head in columns] + ["F", "final score"], rows)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise UsageError("--plot needs matplotlib: pip install 'torch-unlearn[plot]'") from error
    return plt


def _compare_plot(metrics: dict[str, dict[str, float]], kind: str, path: str) -> None:
    plt = _pyplot()
    names = list(metrics)
    panels = [
        ("accuracy", [(k, h) for k, h in _compare_columns(kind) if k.startswith("acc_")], "linear"),
        ("membership attacks", [(k, h) for k, h in _compare_columns(kind) if k.startswith("mia_")], "linear"),
        ("time (s)", [("seconds", "time")], "log"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [4, 3, 1.5]})
    width = 0.8 / len(names)
    for ax, (title, wanted, scale) in zip(axes, panels):
        keys = [(k, h) for k, h in wanted if any(k in metrics[n] for n in names)]
        for i, name in enumerate(names):
            values = [metrics[name].get(k, float("nan")) for k, _ in keys]
            ax.bar([j + i * width for j in range(len(keys))], values, width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
        ax.set_xticklabels([h for _, h in keys], fontsize=8)
        ax.set_yscale(scale)
        ax.set_title(title, fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(names), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)


def _plot(columns: dict[str, dict[str, float]], path: str) -> None:
    plt = _pyplot()
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


def _request_fields(request: Request) -> dict[str, Any]:
    return {"forget_indices": request.indices.tolist(), "forget_classes": request.forget_classes}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One method on the digits request, with its original and retrained models."""
    request = _request(args)
    noise = {"noise": True} if args.noise else {}
    out = run_digits(args.method, request, arch=args.model, seed=args.seed, options=noise, progress=not args.quiet)
    metrics = out["metrics"]
    columns = {"original": metrics["original"], "unlearned": metrics[args.method], "retrained": metrics["retrain"]}
    return {
        "method": args.method,
        "model": args.model,
        **_request_fields(request),
        "metrics": columns,
        "report": out["reports"][args.method],
    }


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """The methods side by side on the digits request: from the model seed
    --seed, or summarised over --seeds model seeds from --seed on."""
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    request = _request(args)
    fields = {"methods": args.methods, "model": args.model, **_request_fields(request)}
    progress = not args.quiet
    if args.seeds == 1:
        out = compare_digits(args.methods, request, arch=args.model, seed=args.seed, progress=progress)
        return {**fields, **{key: value for key, value in out.items() if key != "confidences"}}
    seeds = list(range(args.seed, args.seed + args.seeds))
    return {**fields, **compare_digits_seeds(args.methods, request, arch=args.model, seeds=seeds, progress=progress)}


def audit(args: argparse.Namespace) -> AuditResult:
    """The forget-quality audit of the methods on one digits request."""
    _digits()
    request = dict(
        forget_class=args.forget_class,
        forget_fraction=args.forget_fraction,
        forget_indices=_indices(args),
        mislabelled=args.mislabelled,
    )
    if all(value is None for value in request.values()):
        request["forget_samples"] = args.forget_samples
    try:
        return run_audit(
            args.methods, **request, models=args.models, arch=args.model, seed=args.seed, progress=not args.quiet
        )
    except ValueError as error:
        raise _flagged(error) from error


def _add_request_options(p: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """The digits request's flags; returns the group of the mutually exclusive ones."""
    p.add_argument("--model", default="cnn", choices=list(models.ARCHITECTURES))
    which = p.add_mutually_exclusive_group()
    which.add_argument("--forget-samples", type=int, default=10, help="forget this many random training samples")
    which.add_argument("--forget-indices", help="comma-separated training-sample indices to forget")
    which.add_argument("--forget-class", type=int, help="forget the class (every training sample of it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the metrics and the reports to this file")
    p.add_argument("--plot", help="write a bar chart (PNG) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return which


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearn", description="Make a trained PyTorch model forget data.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="unlearn on the embedded digits data and compare with retraining")
    r.add_argument("--method", default="lcodec", help=f"one of: {', '.join(available())}")
    r.add_argument("--noise", action="store_true", help="add L-CODEC's (epsilon, delta) Gaussian noise")
    _add_request_options(r)
    c = sub.add_parser("compare", help="every method applicable to one request, side by side with retraining")
    c.add_argument("--methods", default="all", help="'all' or a comma-separated list of methods")
    c.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="repeat with K model seeds (--seed, --seed + 1, ...; the request stays the one --seed draws): "
        "mean +- std, and with K >= 2 the forget quality F and the final score (F is 0 for K = 2: use K >= 3)",
    )
    _add_request_options(c)
    a = sub.add_parser(
        "audit",
        help="forget quality of each method against retraining, over many models per side",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a.add_argument("--methods", default="all", help="'all' or a comma-separated list of methods")
    a.add_argument("--models", type=int, default=32, help="models per side: originals, references, unlearning runs")
    which = _add_request_options(a)
    which.add_argument("--forget-fraction", type=float, help="forget this fraction of the training samples")
    which.add_argument("--mislabelled", type=int, help="give this many training samples wrong labels, then forget them")
    sub.add_parser("foci", help="FOCI on the digits pixels: which pixels carry the label")
    return parser


def _describe(out: dict[str, Any]) -> str:
    if out["forget_classes"] is not None:
        return f"forgetting class {out['forget_classes'][0]} ({len(out['forget_indices'])} training samples)"
    return f"forgetting {len(out['forget_indices'])} training samples"


def _kind(out: dict[str, Any]) -> str:
    return "class" if out["forget_classes"] is not None else "instance"


def _print_run(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"\n{args.method} on digits ({args.model}), {_describe(out)}")
    print(_table(out["metrics"]))


def _print_compare(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.seeds == 1:
        print(f"\nmethods on digits ({args.model}), {_describe(out)}")
        print(_compare_table(out["metrics"], _kind(out)))
    else:
        seeds = ", ".join(str(seed) for seed in out["seeds"])
        print(f"\nmethods on digits ({args.model}), {_describe(out)}; mean +- std over model seeds {seeds}")
        print(_seeds_table(out, _kind(out)))
        print("F: forget quality F (higher = closer to retraining); retrain's F is the retrain-vs-retrain ceiling")
        print("final score: F x retain accuracy ratio x test accuracy ratio, each over retraining's")
    for name, reason in out["skipped"].items():
        print(f"skipped {name}: {reason}")


def _plot_compare(args: argparse.Namespace, out: dict[str, Any], path: str) -> None:
    """The comparison's bar chart; over several seeds, of the means."""
    metrics = out["metrics"]
    if args.seeds > 1:
        metrics = {name: {key: summary["mean"] for key, summary in values.items()} for name, values in metrics.items()}
    _compare_plot(metrics, _kind(out), path)


# command -> (what it computes, how it prints, how it plots)
COMMANDS: dict[str, tuple[Callable, Callable, Callable]] = {
    "run": (run, _print_run, lambda args, out, path: _plot(out["metrics"], path)),
    "compare": (compare, _print_compare, _plot_compare),
    "audit": (audit, lambda args, out: print(out.table()), lambda args, out, path: out.plot(path)),
}


def _command(args: argparse.Namespace) -> None:
    if args.command == "foci":
        demo.main()
        return
    if args.plot:
        _pyplot()  # a missing matplotlib is a usage error before the run, not after it
    compute, show, plot = COMMANDS[args.command]
    out = compute(args)
    show(args, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out.to_dict() if isinstance(out, AuditResult) else out, f, indent=2, default=str)
    if args.plot:
        plot(args, out, args.plot)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _command(args)
    except (UsageError, ValueError) as error:
        print(f"unlearn: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
