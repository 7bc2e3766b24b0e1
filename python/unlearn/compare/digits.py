"""The experiment on the embedded default: one forget request on the digits,
served by one method or by several through `compare()`, from the cached
digits models (`unlearn.train`, `unlearn.train_mnemonic`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .. import data as data_module
from .._core import Split, check_seed
from ..training import TRAINING_DEFAULTS, train, train_mnemonic
from .runner import PerMethod, compare, resolve_methods

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


@dataclass
class Request:
    """Which training samples (or classes) to forget, and the rest."""

    forget: Split
    retain: Split
    indices: torch.Tensor
    forget_classes: Optional[list[int]] = None

    @property
    def kind(self) -> str:
        return "class" if self.forget_classes is not None else "instance"


def digits_request(
    digits: data_module.Digits,
    *,
    forget_samples: Optional[int] = None,
    forget_indices: Optional[Sequence[int]] = None,
    forget_class: Optional[int] = None,
    seed: int = 0,
) -> Request:
    """A request on the digits training split: `forget_samples` random samples
    (seeded), the given `forget_indices`, or every sample of `forget_class`."""
    seed = check_seed(seed)
    given = [v is not None for v in (forget_samples, forget_indices, forget_class)]
    if sum(given) != 1:
        raise ValueError("give exactly one of forget_samples, forget_indices and forget_class")
    train_split, n = digits.train, len(digits.train)
    classes = None
    if forget_indices is not None:
        idx = torch.as_tensor(list(forget_indices), dtype=torch.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad) or len(idx) == 0:
            raise ValueError(f"forget_indices must lie in 0..{n - 1}, got {bad.tolist() or 'none'}")
        idx = idx.unique()
    elif forget_class is not None:
        if not 0 <= forget_class < digits.classes:
            raise ValueError(f"forget_class must be in 0..{digits.classes - 1}, got {forget_class}")
        idx, classes = torch.nonzero(train_split.labels == forget_class)[:, 0], [forget_class]
    else:
        if not 1 <= forget_samples < n:
            raise ValueError(f"forget_samples must be in 1..{n - 1}, got {forget_samples}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:forget_samples].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[idx] = False
    return Request(
        Split(train_split.inputs[idx], train_split.labels[idx]),
        Split(train_split.inputs[keep], train_split.labels[keep]),
        idx,
        classes,
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
    methods: Union[str, Sequence[str]], request: Request, *, arch: str = "cnn", seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """Every method in `methods` on `request`, each from the model `prepare()`
    gives it, next to the cached `arch` model and retraining (see `compare()`)."""
    names = [name for name in resolve_methods(methods, request.kind) if name != "retrain"]
    prepared = {name: prepare(name, arch, seed) for name in names}
    options = {name: method_options for name, (_, method_options) in prepared.items()}
    models = {name: model for name, (model, _) in prepared.items()}
    return _on_digits(train(arch, seed=seed), methods, request, seed, options, models, progress)


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
