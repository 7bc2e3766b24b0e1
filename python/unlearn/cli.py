"""The `unlearn` command (also `python -m unlearn`).

    unlearn run --method lcodec --forget-samples 10    train or load the digits model,
                                                        unlearn, retrain, evaluate
    unlearn compare --methods all --forget-class 3      every applicable method side by side
    unlearn compare --methods all --seeds 4             the same over 4 model seeds: mean +- std,
                                                        forget quality F, final score
    unlearn compare --model my_model:build --weights w.pt --data my_model:load_data --retrain my_model:train
                                                        the same on a model and data of your own
    unlearn methods [NAME]                              each method's scope, needs and options
    unlearn audit --methods all --models 32             forget quality over many models per side
    unlearn foci                                        FOCI on the digits pixels

Bad requests (the command's usage errors and the library's ValueErrors) get
a one-line error and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from typing import Any, Callable, Optional, Sequence

from . import data as data_module
from . import demo, models
from ._core import Split, import_callable
from .audit import AuditResult
from .audit import audit as run_audit
from .compare import (
    Request,
    compare_digits,
    compare_digits_seeds,
    draw_request,
    plot_comparison,
    plot_run,
    run_digits,
    user_data,
    user_model,
    write_json,
)
from .compare import compare as compare_methods
from .compare.display import LEGEND, METRICS, SEED_METRICS, Metric, pyplot, request_kind, table_metrics
from .methods import available, describe


class UsageError(Exception):
    """A request the command cannot serve; printed as one line, exit code 2."""


# The library's argument names as the command spells them, for its messages.
FLAGS = {
    "forget_samples": "--forget-samples",
    "forget_indices": "--forget-indices",
    "forget_class": "--forget-class",
    "forget_fraction": "--forget-fraction",
    "mislabelled": "--mislabelled",
    "options": "--option",
    "weights": "--weights",
    "model": "--model",
}


def _digits() -> data_module.TrainTest:
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


def _flagged(error: ValueError) -> str:
    """The library's message with a leading argument name spelled as the flag."""
    message = str(error)
    for name, flag in FLAGS.items():
        rest = message[len(name) :]
        if message.startswith(name) and rest[:1] in (" ", ":"):
            return flag + rest
    return message


def _request(args: argparse.Namespace, train: Split) -> Request:
    """The request the flags ask for, drawn from `train`."""
    indices = _indices(args)
    samples = args.forget_samples if indices is None and args.forget_class is None else None
    return draw_request(
        train, forget_samples=samples, forget_indices=indices, forget_class=args.forget_class, seed=args.seed
    )


def _literal(text: str) -> Any:
    """An option's value: a Python literal (1, 0.5, True, None, 'a', (1, 2)), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _options(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """--option METHOD.KEY=VALUE flags as {method: {key: value}}."""
    options: dict[str, dict[str, Any]] = {}
    for spec in specs:
        key, equals, text = spec.partition("=")
        method, dot, name = key.strip().partition(".")
        if not (equals and dot and method and name):
            raise UsageError(f"--option must be METHOD.KEY=VALUE, got {spec!r}")
        options.setdefault(method, {})[name] = _literal(text.strip())
    return options


def _imported(spec: str, flag: str) -> Callable[..., Any]:
    """The callable an import spec names, found from the current folder as `python -m` would."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return import_callable(spec, flag)


def _user_model(args: argparse.Namespace) -> bool:
    """Whether --model names a factory of the user's (PKG.MODULE:FACTORY) rather than an embedded architecture."""
    return ":" in args.model


# The flags that only a model of the user's can use, and why.
USER_FLAGS = {
    "weights": "the embedded models are trained and cached by the library",
    "data": "the embedded models are models of the digits",
    "retrain": "the embedded models are retrained by the library's 'retrain' method",
}


def _check_model_flags(args: argparse.Namespace) -> None:
    """An embedded --model exists, and takes none of the flags of a user's model."""
    if _user_model(args):
        return
    if args.model not in models.ARCHITECTURES:
        names = ", ".join(models.ARCHITECTURES)
        raise UsageError(
            f"--model must be one of {names}, or PKG.MODULE:FACTORY for a model of yours; got {args.model!r}"
        )
    for name, why in USER_FLAGS.items():
        if getattr(args, name) is not None:
            raise UsageError(f"--{name} needs a model of yours (--model PKG.MODULE:FACTORY): {why}")


def _metric_label(metric: Metric) -> str:
    return f"{metric.label} {metric.mark}"


def _table(columns: dict[str, dict[str, float]]) -> str:
    """The run's table: one line per metric, one column per model."""
    names = list(columns)
    shown = [m for m in METRICS if any(m.key in c for c in columns.values())]
    width = max(len(_metric_label(m)) for m in shown)
    lines = [f"{'':<{width}}  " + "  ".join(f"{n:>11}" for n in names)]
    for metric in shown:
        cells = [f"{columns[n][metric.key]:>11.4f}" if metric.key in columns[n] else f"{'-':>11}" for n in names]
        lines.append(f"{_metric_label(metric):<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _grid(heads: list[str], rows: dict[str, list[str]]) -> str:
    """One line per method: its name, then its cells right-aligned under the
    heads, each column at least 13 characters wide."""
    width = max(len(name) for name in rows)
    widths = [max(13, len(head), *(len(cells[i]) for cells in rows.values())) for i, head in enumerate(heads)]
    lines = [f"{'method':<{width}}  " + "  ".join(f"{head:>{w}}" for head, w in zip(heads, widths))]
    for name, cells in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths)))
    return "\n".join(lines)


def _head(metric: Metric) -> str:
    return f"{metric.header} {metric.mark}"


def _number(key: str, value: float) -> str:
    return f"{value:.1f}x" if key == "speedup" else f"{value:.4f}"


def _compare_table(out: dict[str, Any]) -> str:
    columns = table_metrics(request_kind(out))
    rows = {
        name: [_number(m.key, values[m.key]) if m.key in values else "-" for m in columns]
        for name, values in out["metrics"].items()
    }
    return _grid([_head(m) for m in columns], rows)


def _spread(key: str, summary: dict[str, float]) -> str:
    """A compact "mean+-std" cell: 3 decimals, a speed-up's 1 and its "x" at the end."""
    digits = 1 if key == "speedup" else 3
    cell = f"{summary['mean']:.{digits}f}+-{summary['std']:.{digits}f}"
    return cell + "x" if key == "speedup" else cell


def _seeds_table(out: dict[str, Any]) -> str:
    """The comparison over seeds: "mean+-std" cells, then F and the final score."""
    columns = table_metrics(request_kind(out))
    rows = {}
    for name, values in out["metrics"].items():
        cells = [_spread(m.key, values[m.key]) if m.key in values else "-" for m in columns]
        rows[name] = cells + [f"{out[m.key][name]:.3f}" for m in SEED_METRICS]
    return _grid([_head(m) for m in columns + SEED_METRICS], rows)


def _request_fields(request: Request) -> dict[str, Any]:
    return {"forget_indices": request.indices.tolist(), "forget_classes": request.forget_classes}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One method on the digits request, with its original and retrained models."""
    request = _request(args, _digits().train)
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


def _compare_digits(args: argparse.Namespace, options: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], Request]:
    """The comparison on the digits, from the embedded model of the seed, or over model seeds."""
    request, progress = _request(args, _digits().train), not args.quiet
    if args.seeds == 1:
        out = compare_digits(args.methods, request, arch=args.model, seed=args.seed, options=options, progress=progress)
    else:
        seeds = list(range(args.seed, args.seed + args.seeds))
        out = compare_digits_seeds(
            args.methods, request, arch=args.model, seeds=seeds, options=options, progress=progress
        )
    return out, request


def _compare_user(args: argparse.Namespace, options: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], Request]:
    """The comparison on the user's model, data (or the digits) and retraining (or the library's)."""
    factory = _imported(args.model, "--model")
    loader = _imported(args.data, "--data") if args.data else None
    retrain = _imported(args.retrain, "--retrain") if args.retrain else None
    model = user_model(factory, args.weights)
    if loader is None:
        train, test = _digits().train, _digits().test
    else:
        try:
            train, test = user_data(loader)
        except ValueError as error:
            raise UsageError(f"--data: {error}") from error
    request = _request(args, train)
    out = compare_methods(
        model,
        args.methods,
        forget=request.forget,
        retain=(request.retain.inputs, request.retain.labels),
        test=test,
        forget_classes=request.forget_classes,
        retrain=retrain,
        seed=args.seed,
        seeds=args.seeds if args.seeds > 1 else None,
        options=options,
        progress=not args.quiet,
    )
    return out, request


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """The methods side by side on one request: on the digits from the model
    seed --seed, or on a model of the user's; over --seeds seeds from --seed
    on, summarised."""
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    _check_model_flags(args)
    options = _options(args.option)
    out, request = (_compare_user if _user_model(args) else _compare_digits)(args, options)
    fields = {"methods": args.methods, "model": args.model, **_request_fields(request)}
    return {**fields, **{key: value for key, value in out.items() if key != "confidences"}}


def methods(args: argparse.Namespace) -> list[dict[str, Any]]:
    """What each registered method (or the one named) serves, needs and takes."""
    return [describe(name) for name in ([args.name] if args.name else available())]


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
    return run_audit(
        args.methods, **request, models=args.models, arch=args.model, seed=args.seed, progress=not args.quiet
    )


def _add_request_options(p: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """The request's flags; returns the group of the mutually exclusive ones."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--forget-samples", type=int, default=10, help="forget this many random training samples")
    which.add_argument("--forget-indices", help="comma-separated training-sample indices to forget")
    which.add_argument("--forget-class", type=int, help="forget the class (every training sample of it)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the random samples, the models and the methods")
    p.add_argument("--json", help="write the metrics and the reports to this file")
    p.add_argument("--plot", help="write a bar chart (PNG) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress")
    return which


def _embedded_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="cnn", choices=list(models.ARCHITECTURES), help="the digits model")


def _parser() -> argparse.ArgumentParser:
    defaults = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="unlearn", description="Make a trained PyTorch model forget data.", formatter_class=defaults
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run", help="unlearn on the embedded digits data and compare with retraining", formatter_class=defaults
    )
    r.add_argument("--method", default="lcodec", help=f"one of: {', '.join(available())}")
    r.add_argument("--noise", action="store_true", help="add L-CODEC's (epsilon, delta) Gaussian noise")
    _embedded_model(r)
    _add_request_options(r)
    _compare_parser(sub.add_parser("compare", help="methods side by side on one request", formatter_class=defaults))
    m = sub.add_parser("methods", help="each method's scope, needs and options with defaults", formatter_class=defaults)
    m.add_argument("name", nargs="?", help="one method (all of them when left out)")
    a = sub.add_parser(
        "audit",
        help="forget quality of each method against retraining, over many models per side",
        formatter_class=defaults,
    )
    a.add_argument("--methods", default="all", help="'all' or a comma-separated list of methods")
    a.add_argument("--models", type=int, default=32, help="models per side: originals, references, unlearning runs")
    _embedded_model(a)
    which = _add_request_options(a)
    which.add_argument("--forget-fraction", type=float, help="forget this fraction of the training samples")
    which.add_argument("--mislabelled", type=int, help="give this many training samples wrong labels, then forget them")
    sub.add_parser("foci", help="FOCI on the digits pixels: which pixels carry the label", formatter_class=defaults)
    return parser


def _compare_parser(c: argparse.ArgumentParser) -> None:
    """The flags of `unlearn compare`: the digits' or a user's model and data."""
    c.description = (
        "Every method that serves the request, side by side with the original and a retrained model. "
        "On the digits by default; on a model and data of yours with --model PKG.MODULE:FACTORY "
        "(modules are imported from the current folder, as python -m does)."
    )
    c.add_argument("--methods", default="all", help="'all' or a comma-separated list of methods")
    c.add_argument(
        "--model",
        default="cnn",
        help=f"an embedded digits model ({', '.join(models.ARCHITECTURES)}), or PKG.MODULE:FACTORY, "
        "a function of yours that returns a torch.nn.Module",
    )
    c.add_argument("--weights", help="with a model of yours: a state dict file (torch.save) to load into it")
    c.add_argument(
        "--data",
        help="with a model of yours: PKG.MODULE:LOADER, a function returning (train_dataset, test_dataset) of "
        "(input, label) pairs; the request is drawn from the train dataset (the digits when left out)",
    )
    c.add_argument(
        "--retrain",
        help="with a model of yours: PKG.MODULE:FN, your training function, called as FN((inputs, labels), seed=S) "
        "on the retained data (the library's 'retrain' method when left out)",
    )
    c.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="a method's option (repeatable), the value a Python literal or else a string; "
        "see `unlearn methods METHOD`",
    )
    c.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="repeat with K seeds (--seed, --seed + 1, ...; the request stays the one --seed draws): "
        "mean +- std, and with K >= 2 the forget quality F and the final score (F is 0 for K = 2: use K >= 3); "
        "on the digits each seed trains its own model, a model of yours stays the same",
    )
    _add_request_options(c)


def _describe(out: dict[str, Any]) -> str:
    if out["forget_classes"] is not None:
        return f"forgetting class {out['forget_classes'][0]} ({len(out['forget_indices'])} training samples)"
    return f"forgetting {len(out['forget_indices'])} training samples"


def _subject(args: argparse.Namespace) -> str:
    """What the comparison ran on: the digits model, or the user's model and data."""
    if not _user_model(args):
        return f"digits ({args.model})"
    return f"{args.model} (data: {args.data or 'digits'})"


def _heading(args: argparse.Namespace, out: dict[str, Any]) -> str:
    heading = f"methods on {_subject(args)}, {_describe(out)}"
    if args.seeds > 1:
        seeds = ", ".join(str(seed) for seed in out["seeds"])
        heading += f"; mean +- std over {'seeds' if _user_model(args) else 'model seeds'} {seeds}"
    return heading


def _run_heading(args: argparse.Namespace, out: dict[str, Any]) -> str:
    return f"{args.method} on digits ({args.model}), {_describe(out)}"


def _print_run(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"\n{_run_heading(args, out)}")
    print(_table(out["metrics"]))
    print(LEGEND)


def _print_compare(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"\n{_heading(args, out)}")
    if args.seeds == 1:
        print(_compare_table(out))
    else:
        print(_seeds_table(out))
        print("F: forget quality F (higher = closer to retraining); retrain's F is the retrain-vs-retrain ceiling")
        print("final score: F x retain accuracy ratio x test accuracy ratio, each over retraining's")
    print(LEGEND)
    for name, reason in out["skipped"].items():
        print(f"skipped {name}: {reason}")


def _print_methods(args: argparse.Namespace, out: list[dict[str, Any]]) -> None:
    for info in out:
        print(f"{info['name']}: {info['description']}")
        print(f"  scope: {info['scope']}; needs: {', '.join(info['needs']) or 'nothing'}")
        settings = {f"{name}={option['default']!r}": option["doc"] for name, option in info["options"].items()}
        width = max(map(len, settings), default=0)
        print("  options:" if settings else "  options: none")
        for setting, doc in settings.items():
            print(f"    {setting:<{width}}  {doc}".rstrip())


def _plot_run(args: argparse.Namespace, out: dict[str, Any], path: str) -> None:
    plot_run(out["metrics"], path, title=_run_heading(args, out))


def _plot_compare(args: argparse.Namespace, out: dict[str, Any], path: str) -> None:
    plot_comparison(out, path, title=_heading(args, out))


# command -> (what it computes, how it prints, how it plots)
COMMANDS: dict[str, tuple[Callable, Callable, Optional[Callable]]] = {
    "run": (run, _print_run, _plot_run),
    "compare": (compare, _print_compare, _plot_compare),
    "audit": (audit, lambda args, out: print(out.table()), lambda args, out, path: out.plot(path)),
    "methods": (methods, _print_methods, None),
}


def _command(args: argparse.Namespace) -> None:
    if args.command == "foci":
        demo.main()
        return
    compute, show, plot = COMMANDS[args.command]
    path, json_path = getattr(args, "plot", None), getattr(args, "json", None)
    if path:
        try:
            pyplot()  # a missing matplotlib is a usage error before the run, not after it
        except ImportError as error:
            raise UsageError("--plot needs matplotlib: pip install 'torch-unlearn[plot]'") from error
    out = compute(args)
    show(args, out)
    if json_path:
        write_json(out.to_dict() if isinstance(out, AuditResult) else out, json_path)
    if path:
        plot(args, out, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _command(args)
    except UsageError as error:
        print(f"unlearn: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"unlearn: error: {_flagged(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
