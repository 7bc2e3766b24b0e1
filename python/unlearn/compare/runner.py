"""`compare()`: unlearning methods side by side on one request, on any model
and data, each scored against a model retrained without the forgotten data."""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .._core import (
    Data,
    ForgetResult,
    Split,
    as_split,
    check_model,
    check_seed,
    class_request,
    output_classes,
    takes_seed,
    validate_classes,
)
from ..evaluation import evaluate, model_confidences
from ..methods import applicable, available, describe
from ..methods import forget as run_method
from ..methods.registry import NEEDS, get

# Trains a model from scratch on the retained data: `fn(retain, seed=...)`, or `fn(retain)`.
RetrainFunction = Callable[..., nn.Module]
# Method options, or starting models, by method name.
PerMethod = Mapping[str, Any]


def _names(spec: Union[str, Sequence[str]]) -> list[str]:
    """The names of a comma-separated string or a sequence, stripped, without blanks and repeats."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"methods must be a str or a sequence of str, got {spec!r}")
    return list(dict.fromkeys(name.strip() for name in names if name.strip()))


def resolve_methods(spec: Union[str, Sequence[str]], kind: str) -> list[str]:
    """The methods `spec` asks for, checked against the request `kind` ("class"
    or "instance"): "all" (every method serving it), a comma-separated string
    or a sequence of names. "retrain" may be named: its row is always there."""
    names = _names(spec)
    if names == ["all"]:
        return applicable(kind)
    if not names:
        raise ValueError("methods is empty: give 'all' or method names")
    unknown = [name for name in names if name not in available()]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; available: {', '.join(available())}")
    wrong = [name for name in names if name != "retrain" and name not in applicable(kind)]
    if wrong:
        raise ValueError(
            f"method {wrong[0]!r} does not serve {kind} requests; those that do: {', '.join(applicable(kind))}"
        )
    return names


def _missing_needs(name: str, options: Mapping[str, Any]) -> list[str]:
    """What method `name` needs that the call does not bring: a request always
    brings forget and retain samples, mnemonic codes come as the `codes` option."""
    brought = {"forget", "retain"} | ({"mnemonic_codes"} if options.get("codes") is not None else set())
    return [need for need in describe(name)["needs"] if need not in brought]


def _plan(spec: Union[str, Sequence[str]], kind: str, options: PerMethod) -> tuple[list[str], dict[str, str]]:
    """The methods to run (the retrain reference aside) and, by name, those that
    "all" skips because the call cannot meet their needs, with the reason. A
    method named explicitly whose needs are not met raises ValueError."""
    names = [name for name in resolve_methods(spec, kind) if name != "retrain"]
    skipped = {}
    for name in names:
        missing = _missing_needs(name, options.get(name, {}))
        if not missing:
            continue
        reason = "needs " + "; ".join(NEEDS[need] for need in missing)
        if _names(spec) != ["all"]:
            raise ValueError(
                f"method {name!r} {reason}: give them in options={{{name!r}: ...}} and models={{{name!r}: ...}}"
            )
        skipped[name] = reason
    return [name for name in names if name not in skipped], skipped


def _check_per_method(
    options: PerMethod, models: PerMethod, names: list[str], retrain: Optional[RetrainFunction]
) -> None:
    """Refuses, before any training, what per-method arguments would only fail on later."""
    for what, given in (("options", options), ("models", models)):
        unknown = [name for name in given if name not in available()]
        if unknown:
            raise ValueError(f"{what}: unknown method {unknown[0]!r}; available: {', '.join(available())}")
    for name, start in models.items():
        check_model(start, f"models[{name!r}]")
    if retrain is not None and not callable(retrain):
        raise TypeError(f"retrain must be None or a function, got {type(retrain).__name__}")
    if retrain is not None and "retrain" in options:
        raise ValueError("options['retrain'] set the library's retraining: with a retrain function, give them to it")
    for name in ["retrain", *names]:
        get(name).check_options(dict(options.get(name, {})))


def _request(
    model: nn.Module, forget: Optional[Data], retain: Data, forget_classes: Optional[Sequence[int]]
) -> tuple[Split, Split, Optional[list[int]]]:
    """The forget and retain samples every method and score share, validated
    once; for a class request the classes' samples found in `retain` move to
    the forget side, as `unlearn.forget` does."""
    retain_split = as_split(retain, "retain", model)
    if retain_split is None:
        raise ValueError("retain is required: the data to keep, as a Split, DataLoader or (inputs, labels)")
    forget_split, classes = as_split(forget, "forget", model), None
    if forget_classes is not None:
        classes = validate_classes(forget_classes, output_classes(model, retain_split.inputs, "retain"))
        forget_split, retain_split = class_request(forget_split, retain_split, classes)
    if forget_split is None:
        raise ValueError(
            "forget: give the samples to forget (forget=...), or classes with samples in retain (forget_classes=...)"
        )
    if retain_split is None:
        raise ValueError(f"retain: nothing is left once the samples of classes {classes} are forgotten")
    return forget_split, retain_split, classes


def _retrain_with(fn: RetrainFunction, retain: Split, seed: int) -> ForgetResult:
    """The caller's retraining, timed like a method."""
    start = time.perf_counter()
    model = fn(retain, seed=seed) if takes_seed(fn) else fn(retain)
    seconds = time.perf_counter() - start
    if not isinstance(model, nn.Module):
        raise TypeError(f"retrain must return a torch.nn.Module, got {type(model).__name__}")
    return ForgetResult(model=model, report={"function": getattr(fn, "__qualname__", repr(fn))}, seconds=seconds)


class _Silent:
    """What stands in for the progress bar when none is shown."""

    def set_description(self, text: str) -> None:
        pass

    def update(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, show: bool) -> Any:
    if show:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc="retrain (reference)")
        except ImportError:
            warnings.warn("progress=True needs tqdm, which is not installed: no progress bar", stacklevel=3)
    return _Silent()


def compare(
    model: nn.Module,
    methods: Union[str, Sequence[str]] = "all",
    *,
    forget: Optional[Data] = None,
    retain: Data,
    test: Data,
    forget_classes: Optional[Sequence[int]] = None,
    retrain: Optional[RetrainFunction] = None,
    seed: int = 0,
    options: Optional[PerMethod] = None,
    models: Optional[PerMethod] = None,
    l2: float = 0.01,
    progress: bool = False,
) -> dict[str, Any]:
    """Runs each of `methods` on one forget request and scores the result next
    to `model` ("original") and to a model retrained without the forgotten data.

    `methods` is "all" (every registered method serving the request: a class
    request when `forget_classes` is given, else an instance request), a
    comma-separated string or a sequence of names. `forget`, `retain`,
    `forget_classes` and `test` are as for `unlearn.forget` and
    `unlearn.evaluate`; `l2` is evaluate's (the weight decay `model` was
    trained with). `options` maps a method name to its options, `models` to the
    model it starts from instead of `model`: "mnemonic" needs one trained with
    `MnemonicCodes` and those codes as its `codes` option. A method whose needs
    the call does not meet is skipped by "all" (with the reason) and raises
    ValueError when named. The reference is the "retrain" method (options in
    `options["retrain"]`) or `retrain(retain, seed=seed)` (or `retrain(retain)`),
    a function returning a model trained from scratch on the retained Split.

    Returns a dict:
    - "metrics": {"original": scores, "retrain": scores and "seconds", name:
      scores, "seconds" and "speedup" over retraining};
    - "confidences": for the same columns, the logit-scaled confidence of the
      true label of every forget example under that column's model, in eval
      mode without gradients (`unlearn.evaluation.model_confidences`: a
      (examples,) float64 CPU tensor), what the forget quality F over several
      seeds compares;
    - "reports": {name: what the method did}; "skipped": {name: why}.
    """
    check_model(model)
    seed, options, models = check_seed(seed), dict(options or {}), dict(models or {})
    forget_split, retain_split, classes = _request(model, forget, retain, forget_classes)
    test_split = as_split(test, "test", model)
    if test_split is None:
        raise ValueError("test is required: held-out data, as a Split, DataLoader or (inputs, labels)")
    names, skipped = _plan(methods, "class" if classes is not None else "instance", options)
    _check_per_method(options, models, names, retrain)
    request = dict(forget=forget_split, retain=retain_split, forget_classes=classes, seed=seed)
    score = functools.partial(evaluate, test=test_split, l2=l2, **request)
    confidence = functools.partial(model_confidences, forget=forget_split)

    # torch loads parts of itself on the first torch.func call: pay that before timing.
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))
    steps = _progress_bar(len(names) + 1, progress)
    if retrain is None:
        reference = run_method(models.get("retrain", model), "retrain", **request, **options.get("retrain", {}))
    else:
        reference = _retrain_with(retrain, retain_split, seed)
    steps.update()
    metrics = {
        "original": score(model, reference=reference.model),
        "retrain": {**score(reference.model, reference=reference.model), "seconds": reference.seconds},
    }
    confidences = {"original": confidence(model), "retrain": confidence(reference.model)}
    reports: dict[str, Any] = {"retrain": reference.report}
    for name in names:
        steps.set_description(f"unlearn ({name})")
        result = run_method(models.get(name, model), name, **request, **options.get(name, {}))
        metrics[name], reports[name] = _row(result, score, reference)
        confidences[name] = confidence(result.model)
        steps.update()
    steps.close()
    return {"metrics": metrics, "confidences": confidences, "reports": reports, "skipped": skipped}


def _row(result: ForgetResult, score: Callable[..., dict[str, float]], reference: ForgetResult) -> tuple[dict, dict]:
    """A method's scores with its time and speed-up over retraining, and its
    report without the per-sample columns (too long for a summary)."""
    metrics = {
        **score(result.model, reference=reference.model),
        "seconds": result.seconds,
        "speedup": reference.seconds / result.seconds,
    }
    return metrics, {k: v for k, v in result.report.items() if k != "per_sample_columns"}
