"""`compare()`: unlearning methods side by side on one request, on any model
and data, each scored against a model retrained without the forgotten data."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler, Subset

from .._core import (
    READ_BATCH,
    Data,
    ForgetResult,
    NonNegative,
    Samples,
    Split,
    as_loader,
    as_split,
    batch_pair,
    check_model,
    check_option,
    check_seed,
    class_request,
    first_inputs,
    output_classes,
    progress_bar,
    takes_seed,
    validate_classes,
)
from ..evaluation import evaluate, model_confidences
from ..methods import applicable, available, describe
from ..methods import forget as run_method
from ..methods.registry import NEEDS, get
from .display import Path, check_output, plot_comparison, pyplot, write_json
from .seeds import Seeds, seed_list, summarise

# Trains a model from scratch on the retained data, in the form the caller gave
# it: `fn(retained, seed=...)`, or `fn(retained)`.
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


def check_options(options: PerMethod) -> None:
    """Refuses, before any training, options for an unknown method and
    options a method does not have or of the wrong type (the registry's checks)."""
    unknown = [name for name in options if name not in available()]
    if unknown:
        raise ValueError(f"options: unknown method {unknown[0]!r}; available: {', '.join(available())}")
    for name, given in options.items():
        if not isinstance(given, Mapping):
            raise TypeError(f"options[{name!r}] must map option names to values, got {type(given).__name__}")
        get(name).check_options(dict(given))


def _check_per_method(options: PerMethod, models: PerMethod, retrain: Optional[RetrainFunction]) -> None:
    """Refuses, before any training, what per-method arguments would only fail on later."""
    check_options(options)
    unknown = [name for name in models if name not in available()]
    if unknown:
        raise ValueError(f"models: unknown method {unknown[0]!r}; available: {', '.join(available())}")
    for name, start in models.items():
        check_model(start, f"models[{name!r}]")
    if retrain is not None and not callable(retrain):
        raise TypeError(f"retrain must be None or a function, got {type(retrain).__name__}")
    if retrain is not None and "retrain" in options:
        raise ValueError("options['retrain'] set the library's retraining: with a retrain function, give them to it")


def _request(
    model: nn.Module, forget: Optional[Data], retain: Data, forget_classes: Optional[Sequence[int]]
) -> tuple[Samples, Samples, Optional[list[int]], bool]:
    """The forget and retain samples every method and score share, validated
    once; for a class request the classes' samples found in `retain` move to
    the forget side, as `unlearn.forget` does. The flag says whether some did."""
    retain_split = as_split(retain, "retain", model)
    if retain_split is None:
        raise ValueError("retain is required: the data to keep, as a Split, DataLoader or (inputs, labels)")
    forget_split, classes, given = as_split(forget, "forget", model), None, len(retain_split)
    if forget_classes is not None:
        classes = validate_classes(forget_classes, output_classes(model, first_inputs(retain_split), "retain"))
        forget_split, retain_split = class_request(forget_split, retain_split, classes)
    if forget_split is None:
        raise ValueError(
            "forget: give the samples to forget (forget=...), or classes with samples in retain (forget_classes=...)"
        )
    if retain_split is None:
        raise ValueError(f"retain: nothing is left once the samples of classes {classes} are forgotten")
    return forget_split, retain_split, classes, len(retain_split) != given


class KeptBatches:
    """The batches of a DataLoader without the samples of some classes, for
    a loader `_kept_loader` cannot rebuild (a custom sampler, an iterable
    dataset): each epoch is a fresh pass of the loader, and batches keep
    their structure (entries beyond (inputs, labels) included)."""

    def __init__(self, loader: DataLoader, classes: list[int]):
        self.loader, self.classes = loader, torch.tensor(classes)

    def __iter__(self):
        for batch in self.loader:
            labels = torch.as_tensor(batch[1])
            keep = ~torch.isin(labels, self.classes.to(labels.device))
            if bool(keep.any()):
                parts = [part[keep] if isinstance(part, torch.Tensor) else part for part in batch]
                yield tuple(parts) if isinstance(batch, tuple) else parts

    def __len__(self) -> int:
        return len(self.loader)


def _kept_loader(loader: DataLoader, classes: list[int]) -> Union[DataLoader, KeptBatches]:
    """A DataLoader like `loader` (batch size, shuffling, drop_last, collate
    function, workers) over the samples of its dataset outside `classes`,
    found by one pass over the labels; `KeptBatches` when the loader has a
    sampler of its own or an iterable dataset."""
    dataset = loader.dataset
    default = isinstance(loader.sampler, (SequentialSampler, RandomSampler)) and loader.batch_size is not None
    if isinstance(dataset, IterableDataset) or not default:
        return KeptBatches(loader, classes)
    gone, start, kept = torch.tensor(classes), 0, []
    for batch in DataLoader(dataset, batch_size=READ_BATCH, collate_fn=loader.collate_fn):
        labels = torch.as_tensor(batch_pair(batch, "retain")[1]).cpu()
        kept.append(start + torch.nonzero(~torch.isin(labels, gone))[:, 0])
        start += len(labels)
    return DataLoader(
        Subset(dataset, torch.cat(kept).tolist()),
        batch_size=loader.batch_size,
        shuffle=isinstance(loader.sampler, RandomSampler),
        drop_last=loader.drop_last,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        generator=loader.generator,
    )


def _as_given(retain: Data, kept: Samples, classes: Optional[list[int]], filtered: bool) -> Any:
    """The retained samples `kept` in the form the caller passed `retain`: a
    Split, an (inputs, labels) tuple, or a DataLoader (the caller's own when
    nothing was filtered out of it, else `_kept_loader`'s)."""
    if isinstance(retain, (DataLoader, Dataset)):
        loader = as_loader(retain)
        return loader if not filtered else _kept_loader(loader, classes)
    if isinstance(retain, Split):
        return kept
    return (kept.inputs, kept.labels)


def _retrain_with(fn: RetrainFunction, retain: Data, seed: int) -> ForgetResult:
    """The caller's retraining, timed like a method."""
    start = time.perf_counter()
    model = fn(retain, seed=seed) if takes_seed(fn) else fn(retain)
    seconds = time.perf_counter() - start
    if not isinstance(model, nn.Module):
        raise TypeError(f"retrain must return a torch.nn.Module, got {type(model).__name__}")
    return ForgetResult(model=model, report={"function": getattr(fn, "__qualname__", repr(fn))}, seconds=seconds)


@dataclass
class _Plan:
    """A checked request and what runs on it, the same for every seed."""

    model: nn.Module
    forget: Samples
    retain: Samples
    test: Samples
    classes: Optional[list[int]]
    names: list[str]
    skipped: dict[str, str]
    options: dict[str, Any]
    models: dict[str, Any]
    retrain: Optional[RetrainFunction]
    retrain_data: Data
    l2: float
    progress: bool

    def request(self, seed: int) -> dict[str, Any]:
        return dict(forget=self.forget, retain=self.retain, forget_classes=self.classes, seed=seed)


def _checked_plan(
    model: nn.Module,
    methods: Union[str, Sequence[str]],
    *,
    forget: Optional[Data],
    retain: Data,
    test: Data,
    forget_classes: Optional[Sequence[int]],
    retrain: Optional[RetrainFunction],
    options: dict[str, Any],
    models: dict[str, Any],
    l2: float,
    progress: bool,
) -> _Plan:
    """Everything `compare()` checks before anything trains, and what it checked."""
    forget_split, retain_split, classes, filtered = _request(model, forget, retain, forget_classes)
    test_split = as_split(test, "test", model)
    if test_split is None:
        raise ValueError("test is required: held-out data, as a Split, DataLoader or (inputs, labels)")
    names, skipped = _plan(methods, "class" if classes is not None else "instance", options)
    _check_per_method(options, models, retrain)
    check_option("l2", l2, NonNegative)
    return _Plan(
        model=model,
        forget=forget_split,
        retain=retain_split,
        test=test_split,
        classes=classes,
        names=names,
        skipped=skipped,
        options=options,
        models=models,
        retrain=retrain,
        retrain_data=_as_given(retain, retain_split, classes, filtered),
        l2=l2,
        progress=progress,
    )


def _reference(plan: _Plan, seed: int) -> ForgetResult:
    """The model retrained without the forgotten data, with `seed`."""
    if plan.retrain is not None:
        return _retrain_with(plan.retrain, plan.retrain_data, seed)
    start = plan.models.get("retrain", plan.model)
    return run_method(start, "retrain", **plan.request(seed), **plan.options.get("retrain", {}))


def _seed_values(seeds: Seeds, seed: int) -> list[int]:
    """The seeds of the runs: a count K starts at `seed`; a sequence is taken
    as given (`seed` must then stay 0, so no seed is silently ignored)."""
    if not isinstance(seeds, int) and seed != 0:
        raise ValueError(f"seed: with seeds={seeds!r} leave seed at 0, or give seeds as a count that starts at seed")
    return seed_list(seeds, seed)


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
    seeds: Optional[Seeds] = None,
    options: Optional[PerMethod] = None,
    models: Optional[PerMethod] = None,
    l2: float = 0.0,
    progress: bool = False,
    json: Optional[Path] = None,
    plot: Optional[Path] = None,
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
    ValueError when named. Everything is checked before anything trains.

    The reference is the "retrain" method (options in `options["retrain"]`) or
    `retrain(retained, seed=seed)` (or `retrain(retained)`), a function that
    returns a model trained from scratch on `retained`: the retained data in
    the form `retain` was given, an (inputs, labels) tuple for a pair, a Split
    for a Split, a DataLoader for a DataLoader or Dataset (for a class request
    whose classes had samples in it, a new DataLoader over the other samples
    with its batch size, shuffling, drop_last and collate function, found by
    one pass over the labels; `KeptBatches`, the caller's loader without
    those samples batch by batch, when it has a sampler of its own). DataLoaders are read batch by
    batch, never gathered whole; the per-example confidences pair examples
    across models by read order, so `forget` must read in the same order
    each pass (torch's RNG is seeded alike for each pass; a loader with its
    own `generator` would reshuffle).

    Returns a dict:
    - "metrics": {"original": scores, "retrain": scores and "seconds", name:
      scores, "seconds" and "speedup" over retraining};
    - "confidences": for the same columns, the logit-scaled confidence of the
      true label of every forget example under that column's model, in eval
      mode without gradients (`unlearn.evaluation.model_confidences`: a
      (examples,) float64 CPU tensor), what the forget quality F over several
      seeds compares;
    - "reports": {name: what the method did}; "skipped": {name: why}.

    With `seeds` (a count K: seeds `seed`, ..., `seed` + K - 1, or a sequence
    of distinct seeds) the request runs once per seed, `model` staying the
    same: each method and the retraining get that seed. The result is then
    the summary of `unlearn.compare.seeds.summarise`: each score's mean and
    sample standard deviation, each column's forget quality F against the
    retrained models and the final score (K more retrainings give
    retraining's own F, its ceiling).

    `json` writes the result to that file (tensors as lists); `plot` a bar
    chart (PNG, needs matplotlib: `pip install 'torch-unlearn[plot]'`).
    """
    check_model(model)
    seed, options, models = check_seed(seed), dict(options or {}), dict(models or {})
    seed_values = None if seeds is None else _seed_values(seeds, seed)
    check_output(json, "json")
    check_output(plot, "plot")
    if plot is not None:
        pyplot()  # a missing matplotlib is refused before anything trains
    plan = _checked_plan(
        model,
        methods,
        forget=forget,
        retain=retain,
        test=test,
        forget_classes=forget_classes,
        retrain=retrain,
        options=options,
        models=models,
        l2=l2,
        progress=progress,
    )
    if seed_values is None:
        out = _run(plan, seed)
    else:
        runs = [_run(plan, value, f"seed {value}: ") for value in seed_values]
        out = summarise(runs, seed_values, lambda value: model_confidences(_reference(plan, value).model, plan.forget))
    if json is not None:
        write_json(out, json)
    if plot is not None:
        plot_comparison(out, plot, title=_title(plan, seed_values))
    return out


def _title(plan: _Plan, seeds: Optional[list[int]]) -> str:
    """What the plot shows: the request, and the seeds of a summary."""
    what = f"{len(plan.forget)} samples"
    if plan.classes is not None:
        what = f"class{'es' if len(plan.classes) > 1 else ''} {', '.join(map(str, plan.classes))} ({what})"
    over = f", mean +- std over seeds {', '.join(map(str, seeds))}" if seeds is not None else ""
    return f"Unlearning methods against retraining: forgetting {what}{over}"


def _run(plan: _Plan, seed: int, tag: str = "") -> dict[str, Any]:
    """One comparison with `seed`: the reference, then every method, each scored."""
    request = plan.request(seed)
    score = functools.partial(evaluate, test=plan.test, l2=plan.l2, **request)
    confidence = functools.partial(model_confidences, forget=plan.forget)

    # torch loads parts of itself on the first torch.func call: pay that before timing.
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))
    steps = progress_bar(len(plan.names) + 1, f"{tag}retrain (reference)", plan.progress)
    reference = _reference(plan, seed)
    steps.update()
    metrics = {
        "original": score(plan.model, reference=reference.model),
        "retrain": {**score(reference.model, reference=reference.model), "seconds": reference.seconds},
    }
    confidences = {"original": confidence(plan.model), "retrain": confidence(reference.model)}
    reports: dict[str, Any] = {"retrain": reference.report}
    for name in plan.names:
        steps.set_description(f"{tag}unlearn ({name})")
        result = run_method(plan.models.get(name, plan.model), name, **request, **plan.options.get(name, {}))
        metrics[name], reports[name] = _row(result, score, reference)
        confidences[name] = confidence(result.model)
        steps.update()
    steps.close()
    return {"metrics": metrics, "confidences": confidences, "reports": reports, "skipped": plan.skipped}


def _row(result: ForgetResult, score: Callable[..., dict[str, float]], reference: ForgetResult) -> tuple[dict, dict]:
    """A method's scores with its time and speed-up over retraining, and its
    report without the per-sample columns (too long for a summary)."""
    metrics = {
        **score(result.model, reference=reference.model),
        "seconds": result.seconds,
        "speedup": reference.seconds / result.seconds,
    }
    return metrics, {k: v for k, v in result.report.items() if k != "per_sample_columns"}
