"""The experiment on the embedded default: one forget request on the digits,
served by one method or by several through `compare()`, from the cached
digits models (`unlearn.train`, `unlearn.train_mnemonic`), once or over
several model seeds (`compare_digits_seeds`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .. import data as data_module
from ..evaluation import model_confidences
from ..methods import forget
from ..training import TRAINING_DEFAULTS, train, train_mnemonic
from .requests import Request, draw_request
from .runner import PerMethod, check_options, compare, resolve_methods
from .seeds import Seeds, seed_list, summarise

# Options for the embedded digits models (trained with weight decay 5e-4,
# which L-CODEC's objective takes as its l2; its default, 0, is for models
# trained without). Its (epsilon, delta) noise assumes a strongly convex
# objective: at this l2 its scale would erase the model, and noise="auto"
# would leave it out with a warning on every run, so it is off here.
DIGITS_OPTIONS: dict[str, dict[str, Any]] = {
    "lcodec": {"l2": TRAINING_DEFAULTS["weight_decay"], "noise": "off"},
}


def _mnemonic_model(arch: str, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The digits model trained with mnemonic codes, and the codes as the option."""
    model, codes = train_mnemonic(arch, seed=seed)
    return model, {"codes": codes}


# Methods that start from a specially trained model: name -> (arch, seed) ->
# (model, options the method needs with it).
SPECIAL_TRAINING: dict[str, Callable[[str, int], tuple[nn.Module, dict[str, Any]]]] = {"mnemonic": _mnemonic_model}


def digits_request(
    digits: data_module.TrainTest,
    *,
    forget_samples: Optional[int] = None,
    forget_indices: Optional[Sequence[int]] = None,
    forget_class: Optional[int] = None,
    seed: int = 0,
) -> Request:
    """A request on the digits training split: `forget_samples` random samples
    (seeded), the given `forget_indices`, or every sample of `forget_class`."""
    return draw_request(
        digits.train, forget_samples=forget_samples, forget_indices=forget_indices, forget_class=forget_class, seed=seed
    )


def prepare(method: str, arch: str, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model `method` starts from (cached) and its options on the digits."""
    model, extra = SPECIAL_TRAINING[method](arch, seed) if method in SPECIAL_TRAINING else (train(arch, seed=seed), {})
    return model, {**DIGITS_OPTIONS.get(method, {}), **extra}


def _on_digits(
    model: nn.Module,
    methods: Union[str, Sequence[str]],
    request: Request,
    seed: int,
    options: PerMethod,
    models: PerMethod,
    progress: bool,
) -> dict[str, Any]:
    """`compare()` on `request`, scored on the digits test split with the training weight decay."""
    return compare(
        model,
        methods,
        forget=request.forget,
        retain=request.retain,
        test=data_module.digits().test,
        forget_classes=request.forget_classes,
        seed=seed,
        options=options,
        models=models,
        l2=TRAINING_DEFAULTS["weight_decay"],
        progress=progress,
    )


def compare_digits(
    methods: Union[str, Sequence[str]],
    request: Request,
    *,
    arch: str = "cnn",
    seed: int = 0,
    options: Optional[PerMethod] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Every method in `methods` on `request`, each from the model `prepare()`
    gives it, next to the cached `arch` model and retraining (see `compare()`);
    `options` (method name -> options) go over the digits options."""
    options = dict(options or {})
    check_options(options)
    names = [name for name in resolve_methods(methods, request.kind) if name != "retrain"]
    prepared = {name: prepare(name, arch, seed) for name in names}
    models = {name: model for name, (model, _) in prepared.items()}
    merged = {name: method_options for name, (_, method_options) in prepared.items()}
    for name, given in options.items():
        merged[name] = {**merged.get(name, {}), **given}
    return _on_digits(train(arch, seed=seed), methods, request, seed, merged, models, progress)


def compare_digits_seeds(
    methods: Union[str, Sequence[str]],
    request: Request,
    *,
    arch: str = "cnn",
    seeds: Seeds,
    options: Optional[PerMethod] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """`compare_digits` on `request` once per model seed, summarised by
    `seeds.summarise` (means, standard deviations, forget quality F, final
    scores). Each run trains (or loads) the original model with its seed,
    retrains the reference with it and runs every method with it; the
    request, the data to forget, is the same in every run. `seeds` is a
    count K (seeds 0, ..., K - 1) or a sequence of distinct seeds."""
    seeds, options = seed_list(seeds), dict(options or {})
    runs = [
        compare_digits(methods, request, arch=arch, seed=seed, options=options, progress=progress) for seed in seeds
    ]
    retrain = {"progress": progress, **options.get("retrain", {})}
    return summarise(
        runs, seeds, lambda seed: _retrained_confidences(request, train(arch, seed=seeds[0]), seed, retrain)
    )


def _retrained_confidences(request: Request, start: nn.Module, seed: int, options: dict[str, Any]) -> torch.Tensor:
    """The forget confidences of a model retrained on the request's retained
    data with `seed` and the "retrain" `options`, as `compare_digits`
    retrains its reference (the "retrain" method reinitialises `start`)."""
    result = forget(
        start,
        "retrain",
        forget=request.forget,
        retain=request.retain,
        forget_classes=request.forget_classes,
        seed=seed,
        **options,
    )
    return model_confidences(result.model, request.forget)


def run_digits(
    method: str,
    request: Request,
    *,
    arch: str = "cnn",
    seed: int = 0,
    options: Optional[Mapping[str, Any]] = None,
    progress: bool = False,
) -> dict[str, Any]:
    """One method on `request` next to the model it starts from (`prepare()`)
    and retraining; `options` go over its digits options."""
    resolve_methods([method], request.kind)
    model, method_options = prepare(method, arch, seed)
    return _on_digits(model, [method], request, seed, {method: {**method_options, **(options or {})}}, {}, progress)
