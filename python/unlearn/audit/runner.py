"""`audit()`: how close each unlearning method comes to retraining, measured
per forget example over many independently trained models.

For one request it trains N originals on all the training data and N
references on the retained data, runs each method once on each original, and
compares, per forget example, the distribution of the unlearned models'
outputs with the references' (forget quality F and a per-example
likelihood-ratio attack), next to retain, forget and test accuracy as mean
+- std over the N runs. Two anchors frame every score: "original" (the
originals themselves: doing nothing) and "retrain" (N more models retrained
with other seeds: retraining against retraining, the best any method can
score with this N).
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .. import data as data_module
from .._core import (
    Data,
    PositiveInt,
    Split,
    as_split,
    check_model,
    check_option,
    check_seed,
    class_request,
    eval_mode,
    materialise,
    output_classes,
    takes_seed,
    validate_classes,
)
from ..compare import DIGITS_OPTIONS, check_options, resolve_methods
from ..compare.seeds import summary
from ..ensemble import train_ensemble
from ..evaluation import (
    accuracy_ratio,
    final_score,
    forget_quality_from_confidences,
    lira_from_confidences,
    logit_confidence,
    metrics,
)
from ..evaluation.quality import Delta
from ..methods import describe
from ..methods import forget as run_method
from ..methods.registry import NEEDS
from ..mnemonic_codes import MnemonicCodes
from ..models import ARCHITECTURES
from .report import AuditResult
from .requests import AuditRequest, audit_request

# Trains a model from scratch: `fn((inputs, labels), seed=...)`.
TrainFunction = Callable[..., nn.Module]
ANCHORS = ("original", "retrain")


@dataclass
class _Population:
    """What the audit keeps of N models: each one's logit-scaled confidence
    on every forget example, its accuracies, and the seconds it took."""

    confidences: list[torch.Tensor] = field(default_factory=list)
    accuracies: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def add(self, scores: tuple[torch.Tensor, dict[str, float]], seconds: float = 0.0) -> None:
        confidence, accuracies = scores
        self.confidences.append(confidence)
        for key, value in accuracies.items():
            self.accuracies.setdefault(key, []).append(value)
        self.seconds.append(seconds)


@dataclass
class _Setup:
    """One audit's request and models: the forget, retain and test samples,
    the originals, the references and the second set of references (the
    ceiling), the models a method starts from when not the originals, the
    options by method, and the seconds one retraining takes."""

    forget: Split
    retain: Split
    test: Split
    classes: Optional[list[int]]
    description: str
    originals: list[nn.Module]
    references: list[nn.Module]
    ceiling: list[nn.Module]
    starts: dict[str, list[nn.Module]]
    options: dict[str, dict[str, Any]]
    retrain_seconds: float


def audit(
    methods: Union[str, Sequence[str]] = "all",
    *,
    forget_class: Optional[int] = None,
    forget_samples: Optional[int] = None,
    forget_fraction: Optional[float] = None,
    forget_indices: Optional[Sequence[int]] = None,
    mislabelled: Optional[int] = None,
    train_fn: Optional[TrainFunction] = None,
    forget: Optional[Data] = None,
    retain: Optional[Data] = None,
    test: Optional[Data] = None,
    forget_classes: Optional[Sequence[int]] = None,
    models: int = 32,
    arch: str = "cnn",
    seed: int = 0,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    delta: float = 1e-5,
    progress: bool = False,
    workers: int = 1,
) -> AuditResult:
    """Audits `methods` ("all": every method serving the request, or names) on
    one forget request with `models` = N models per side (N >= 2; the
    challenge metric needs about 32 or more to separate methods).

    On the embedded digits give one of `forget_class`, `forget_samples` (a
    count), `forget_fraction`, `forget_indices` or `mislabelled` (a count of
    training samples given wrong labels before the originals are trained),
    and optionally `arch` ("logreg", "mlp", "cnn"; "vgg" trains one model at a
    time because of its dropout): the 2N + N models are trained as batched
    ensembles and cached.

    On your own model give `train_fn`, called as `train_fn((inputs, labels),
    seed=s)` (or without `seed` when it takes none) and returning a trained
    model, with `forget`, `retain` and `test` data ((inputs, labels) pairs,
    Splits or DataLoaders) and, for a class request, `forget_classes`: the
    originals are trained on retain and forget together, the references on
    retain, each with its own seed; with `workers` > 1 those calls run in
    that many processes (spawned: `train_fn` must be a top-level function of
    an importable module; each process gets its share of torch's threads).
    On a GPU, let `train_fn` put the model on it.

    Method i runs on original i with `seed + i` and `options[method]` (on the
    digits over the digits options, e.g. lcodec's l2 set to the training
    weight decay). A method that needs something the audit cannot bring
    (mnemonic codes on a user's model) is skipped by "all"; a method that
    raises on some run is reported under `failed` instead of stopping the
    audit. Returns an `AuditResult` (`.table()`, `.to_dict()`, `.plot(path)`).
    """
    check_option("models", models, int)
    if models < 2:
        raise ValueError(f"models must be at least 2 (the per-example scores compare distributions), got {models}")
    seed = check_seed(seed)
    check_option("delta", delta, Delta)
    check_option("progress", progress, bool)
    check_option("workers", workers, PositiveInt)
    options = _check_options(options)
    request = dict(
        forget_class=forget_class,
        forget_samples=forget_samples,
        forget_fraction=forget_fraction,
        forget_indices=forget_indices,
        mislabelled=mislabelled,
    )
    if train_fn is None and workers > 1:
        raise ValueError("workers: only calls of train_fn run in worker processes; the digits train as ensembles")
    if train_fn is None and arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHITECTURES))}, got {arch!r}")
    if train_fn is None:
        user = {"forget": forget, "retain": retain, "test": test, "forget_classes": forget_classes}
        given = [name for name, value in user.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]} is for your own model: give train_fn too (the digits use forget_class=...)")
        digits_request = audit_request(seed=seed, **request)
        names, skipped = _plan(methods, digits_request.kind, mnemonic_possible=True)
        setup = _digits_setup(digits_request, names, arch, models, seed, options, progress)
    else:
        given = [name for name, value in request.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]} describes a digits request; with train_fn give forget/retain/test data")
        if not callable(train_fn):
            raise TypeError(f"train_fn must be a function, got {type(train_fn).__name__}")
        kind = "class" if forget_classes is not None else "instance"
        names, skipped = _plan(methods, kind, mnemonic_possible=False)
        setup = _user_setup(train_fn, forget, retain, test, forget_classes, models, seed, options, progress, workers)
    populations, failed = _run(setup, names, seed, progress)
    return _result(setup, populations, failed, skipped, models, seed, delta, arch if train_fn is None else None)


def _check_options(options: Optional[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The per-method options, each method known and each option valid for it."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError("options must map method names to dicts of options, e.g. {'ssd': {'alpha': 5.0}}")
    check_options(options)
    return {name: dict(value) for name, value in options.items()}


def _plan(methods: Union[str, Sequence[str]], kind: str, mnemonic_possible: bool) -> tuple[list[str], dict[str, str]]:
    """The methods to audit and those that "all" skips, with the reason (a
    method named explicitly whose needs the audit cannot meet raises)."""
    names = [name for name in resolve_methods(methods, kind) if name != "retrain"]
    skipped = {}
    for name in names:
        if "mnemonic_codes" in describe(name)["needs"] and not mnemonic_possible:
            skipped[name] = "needs " + NEEDS["mnemonic_codes"] + ": train_fn does not train with them"
    named = [name for name in skipped if methods != "all"]
    if named:
        raise ValueError(f"method {named[0]!r} {skipped[named[0]]}")
    return [name for name in names if name not in skipped], skipped


def _digits_setup(
    request: AuditRequest,
    names: list[str],
    arch: str,
    count: int,
    seed: int,
    options: dict[str, dict[str, Any]],
    progress: bool,
) -> _Setup:
    """The digits models for `request`: originals, references and the ceiling
    trained as ensembles, mnemonic-trained originals when "mnemonic" runs."""
    seeds = [seed + i for i in range(count)]
    others = [seed + count + i for i in range(count)]
    _say(progress, f"training {count} originals, {2 * count} references ({arch})")
    originals = train_ensemble(arch, seeds, split=request.train)
    references = train_ensemble(arch, seeds, split=request.retain)
    ceiling = train_ensemble(arch, others, split=request.retain)
    starts, merged = {}, {name: {**DIGITS_OPTIONS.get(name, {}), **options.get(name, {})} for name in names}
    if "mnemonic" in names:
        codes = MnemonicCodes(request.train, t_mix=0.1, seed=seed)
        starts["mnemonic"] = train_ensemble(arch, seeds, split=request.train, mnemonic=codes)
        merged["mnemonic"].setdefault("codes", codes)
    retrained = run_method(originals[0], "retrain", forget=request.forget, retain=request.retain, seed=seed)
    return _Setup(
        request.forget,
        request.retain,
        data_module.digits().test,
        request.forget_classes,
        request.description,
        originals,
        references,
        ceiling,
        starts,
        merged,
        retrained.seconds,
    )


def _user_setup(
    train_fn: TrainFunction,
    forget: Optional[Data],
    retain: Optional[Data],
    test: Optional[Data],
    forget_classes: Optional[Sequence[int]],
    count: int,
    seed: int,
    options: dict[str, dict[str, Any]],
    progress: bool,
    workers: int,
) -> _Setup:
    """The user's request and models: originals trained by `train_fn` on
    retain and forget together, references and the ceiling on retain."""
    if retain is None or test is None:
        raise ValueError("retain and test are required with train_fn: the data to keep and held-out data")
    retain_split, forget_split = _in_memory(retain, "retain"), _in_memory(forget, "forget")
    if forget_split is None and forget_classes is None:
        raise ValueError("forget: give the samples to forget (forget=...) or the classes (forget_classes=...)")
    everything = retain_split if forget_split is None else _joined(forget_split, retain_split)
    _say(progress, f"training {count} originals with train_fn")
    originals = [model for model, _ in _train_all(train_fn, everything, range(seed, seed + count), "original", workers)]
    classes = None
    if forget_classes is not None:
        classes = validate_classes(forget_classes, output_classes(originals[0], retain_split.inputs, "retain"))
        forget_split, retain_split = class_request(forget_split, retain_split, classes)
        if forget_split is None or retain_split is None:
            side = "forget" if forget_split is None else "retain"
            raise ValueError(f"{side}: no samples are left on that side of the request for classes {classes}")
    _say(progress, f"training {2 * count} references with train_fn")
    timed = _train_all(train_fn, retain_split, range(seed, seed + 2 * count), "reference", workers)
    models = [model for model, _ in timed]
    test_split = _in_memory(test, "test", originals[0])
    for name, split in (("forget", forget_split), ("retain", retain_split)):
        as_split(split, name, originals[0])
    seconds = sorted(s for _, s in timed)[len(timed) // 2]
    description = f"class {classes}" if classes is not None else f"{len(forget_split)} samples"
    return _Setup(
        forget_split,
        retain_split,
        test_split,
        classes,
        description,
        originals,
        models[:count],
        models[count:],
        {},
        options,
        seconds,
    )


def _in_memory(data: Any, name: str, model: Optional[nn.Module] = None) -> Optional[Split]:
    """`data` as tensors: the audit trains many models on it, so it reads a
    DataLoader once, whole, unlike `unlearn.forget` and `unlearn.evaluate`."""
    samples = as_split(data, name, model)
    return None if samples is None else materialise(samples)


def _joined(first: Split, second: Split) -> Split:
    if first.inputs.shape[1:] != second.inputs.shape[1:] or first.inputs.device != second.inputs.device:
        raise ValueError(
            f"forget and retain must have inputs of one shape on one device, got {tuple(first.inputs.shape[1:])} "
            f"on {first.inputs.device} and {tuple(second.inputs.shape[1:])} on {second.inputs.device}"
        )
    return Split(torch.cat([first.inputs, second.inputs]), torch.cat([first.labels, second.labels]))


def _train_all(
    train_fn: TrainFunction, split: Split, seeds: range, what: str, workers: int
) -> list[tuple[nn.Module, float]]:
    """One model per seed from the user's training function, with the seconds
    each took; in `workers` processes when more than one (each with its
    share of the CPU threads)."""
    calls = [(train_fn, split, seed) for seed in seeds]
    if workers == 1:
        timed = [_call(call) for call in calls]
    else:
        try:
            pickle.dumps(train_fn)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise ValueError(
                f"train_fn cannot be sent to worker processes ({error}): with workers > 1 it must be a "
                "function defined at the top level of an importable module"
            ) from error
        threads = max(1, torch.get_num_threads() // workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
        ) as pool:
            timed = list(pool.map(_call, calls))
    for model, _ in timed:
        if not isinstance(model, nn.Module):
            raise TypeError(f"train_fn must return a torch.nn.Module, got {type(model).__name__} (for an {what})")
        check_model(model, f"the {what} train_fn returned")
    return timed


def _call(call: tuple[TrainFunction, Split, int]) -> tuple[Any, float]:
    """`train_fn((inputs, labels), seed=seed)` (without seed when it takes none), timed."""
    train_fn, split, seed = call
    start = time.perf_counter()
    data = (split.inputs, split.labels)
    model = train_fn(data, seed=seed) if takes_seed(train_fn) else train_fn(data)
    return model, time.perf_counter() - start


def _run(setup: _Setup, names: list[str], seed: int, progress: bool) -> tuple[dict[str, _Population], dict[str, str]]:
    """The anchors' and every method's population; a method that raises is
    recorded in the second dict with its message."""
    populations = {
        "original": _scored(setup, setup.originals),
        "retrain": _scored(setup, setup.ceiling, seconds=setup.retrain_seconds),
    }
    populations["reference"] = _scored(setup, setup.references)
    failed = {}
    for name in names:
        _say(progress, f"unlearning with {name} ({len(setup.originals)} runs)")
        population = _Population()
        try:
            for i, original in enumerate(setup.starts.get(name, setup.originals)):
                result = run_method(
                    original,
                    name,
                    forget=setup.forget,
                    retain=setup.retain,
                    forget_classes=setup.classes,
                    seed=seed + i,
                    **setup.options.get(name, {}),
                )
                population.add(_scores(setup, result.model), result.seconds)
        except (ValueError, RuntimeError) as error:
            failed[name] = f"{type(error).__name__}: {error}"
            continue
        populations[name] = population
    return populations, failed


def _scored(setup: _Setup, models: list[nn.Module], seconds: float = 0.0) -> _Population:
    population = _Population()
    for model in models:
        population.add(_scores(setup, model), seconds)
    return population


def _scores(setup: _Setup, model: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
    """A model's logit-scaled confidence on each forget example and its
    accuracies (on a class request also on the test samples of the kept and
    of the forgotten classes)."""
    with eval_mode(model):
        out = {name: metrics.outputs(model, getattr(setup, name))[0] for name in ("forget", "retain", "test")}
    accuracies = {f"acc_{name}": value.accuracy for name, value in out.items()}
    if setup.classes is not None:
        gone = torch.isin(out["test"].labels, torch.tensor(setup.classes, device=out["test"].labels.device))
        accuracies["acc_test_kept"] = out["test"].subset(~gone).accuracy
    confidence = logit_confidence(out["forget"].log_probs, out["forget"].labels).cpu()
    return confidence, accuracies


def _result(
    setup: _Setup,
    populations: dict[str, _Population],
    failed: dict[str, str],
    skipped: dict[str, str],
    count: int,
    seed: int,
    delta: float,
    arch: Optional[str],
) -> AuditResult:
    """Every population scored against the references."""
    reference = populations.pop("reference")
    against = torch.stack(reference.confidences)
    test_key = "acc_test_kept" if setup.classes is not None else "acc_test"
    rows, epsilons = {}, {}
    for name, population in populations.items():
        ours = torch.stack(population.confidences)
        quality = forget_quality_from_confidences(ours, against, delta=delta)
        # The attack fits each fold's Gaussians on the other folds: 2 folds need 2 models per fold.
        attack = lira_from_confidences(ours, against) if count >= 4 else None
        ratios = [
            accuracy_ratio(population.accuracies[key], reference.accuracies[key]) for key in ("acc_retain", test_key)
        ]
        seconds = sum(population.seconds) / len(population.seconds)
        rows[name] = {
            "forget_quality": quality.score,
            "final_score": final_score(quality, *ratios),
            "lira_auc": attack.auc if attack else None,
            "lira_tpr_at_1pct_fpr": attack.tpr_at_1pct_fpr if attack else None,
            "lira_tpr_at_01pct_fpr": attack.tpr_at_01pct_fpr if attack else None,
            **{key: summary(values) for key, values in population.accuracies.items()},  # N >= 2: std is a number
            "seconds": seconds if name != "original" else None,
            "speedup": setup.retrain_seconds / seconds if name != "original" and seconds > 0 else None,
        }
        epsilons[name] = quality.epsilons
    info = {
        "request": setup.description,
        "kind": "class" if setup.classes is not None else "instance",
        "forget_examples": len(setup.forget),
        "models": count,
        "seed": seed,
        "delta": delta,
        "arch": arch,
        "retrain_seconds": setup.retrain_seconds,
    }
    return AuditResult(rows=rows, epsilons=epsilons, info=info, skipped=skipped, failed=failed)


def _say(enabled: bool, message: str) -> None:
    """A progress line on stderr."""
    if enabled:
        print(f"audit: {message}", file=sys.stderr, flush=True)
