"""Experiments on the embedded default: one forget request on the digits,
served by one method or by every applicable one, each scored against a model
retrained from scratch without the forgotten data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from . import data as data_module
from .evaluation import evaluate
from ._core import Split
from .methods import applicable, available, forget
from .training import TRAINING_DEFAULTS, train, train_mnemonic

# Options for the embedded digits models (trained with weight decay 5e-4).
# The (epsilon, delta) noise of L-CODEC assumes a strongly convex objective;
# at this l2 its scale would erase the model, so it is opt-in here.
DIGITS_OPTIONS: dict[str, dict[str, Any]] = {
    "lcodec": {"l2": TRAINING_DEFAULTS["weight_decay"], "damping": 0.1, "noise": False},
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
    given = [v is not None for v in (forget_samples, forget_indices, forget_class)]
    if sum(given) != 1:
        raise ValueError("give exactly one of forget_samples, forget_indices and forget_class")
    train_split, n = digits.train, len(digits.train)
    classes = None
    if forget_indices is not None:
        idx = torch.as_tensor(list(forget_indices), dtype=torch.int64)
        bad = idx[(idx < 0) | (idx >= n)]
        if len(bad) or len(idx) == 0:
            raise ValueError(f"--forget-indices must lie in 0..{n - 1}, got {bad.tolist() or 'none'}")
        idx = idx.unique()
    elif forget_class is not None:
        if not 0 <= forget_class < digits.classes:
            raise ValueError(f"--forget-class must be in 0..{digits.classes - 1}, got {forget_class}")
        idx, classes = torch.nonzero(train_split.labels == forget_class)[:, 0], [forget_class]
    else:
        if not 1 <= forget_samples < n:
            raise ValueError(f"--forget-samples must be in 1..{n - 1}, got {forget_samples}")
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


def resolve_methods(spec: Union[str, Sequence[str]], kind: str) -> list[str]:
    """"all" or a comma-separated list (or a sequence) of method names, checked
    against the request kind."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return applicable(kind)
    unknown = [n for n in names if n not in available()]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; available: {', '.join(available())}")
    wrong = [n for n in names if n != "retrain" and n not in applicable(kind)]
    if wrong:
        raise ValueError(f"method {wrong[0]!r} does not serve {kind} requests; those that do: {', '.join(applicable(kind))}")
    if not names:
        raise ValueError("--methods is empty")
    return names


def prepare(method: str, arch: str, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model `method` starts from (cached) and its options on the digits."""
    options = dict(DIGITS_OPTIONS.get(method, {}))
    if method in SPECIAL_TRAINING:
        model, extra = SPECIAL_TRAINING[method](arch, seed)
        return model, {**options, **extra}
    return train(arch, seed=seed), options


def score(model: nn.Module, request: Request, test: Split, reference: Optional[nn.Module], seed: int) -> dict[str, float]:
    """evaluate() on the request, with the per-class test accuracies of a class request."""
    return evaluate(
        model,
        forget=request.forget,
        retain=request.retain,
        test=test,
        reference=reference,
        l2=TRAINING_DEFAULTS["weight_decay"],
        seed=seed,
        forget_classes=request.forget_classes,
    )


def compare(
    methods: Union[str, Sequence[str]],
    request: Request,
    *,
    arch: str = "cnn",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Runs every method in `methods` on `request` and scores each against
    retraining. Returns {"metrics": {name: scores with seconds and speedup},
    "reports": {name: method report}}; "original" and "retrain" are rows too."""
    from tqdm.auto import tqdm

    names = [n for n in resolve_methods(methods, request.kind) if n != "retrain"]
    digits = data_module.digits()
    base = train(arch, seed=seed)
    # torch loads parts of itself on the first torch.func call: pay that before timing.
    torch.func.grad(lambda w: (w * w).sum())(torch.ones(1))
    steps = tqdm(total=len(names) + 1, desc="retrain (reference)", disable=not progress)
    reference = forget(base, "retrain", forget=request.forget, retain=request.retain, seed=seed)
    steps.update()
    metrics = {
        "original": score(base, request, digits.test, reference.model, seed),
        "retrain": {**score(reference.model, request, digits.test, reference.model, seed), "seconds": reference.seconds},
    }
    reports: dict[str, Any] = {"retrain": reference.report}
    for name in names:
        steps.set_description(f"unlearn ({name})")
        model, options = prepare(name, arch, seed)
        result = forget(
            model, name, forget=request.forget, retain=request.retain, forget_classes=request.forget_classes,
            seed=seed, **options,
        )
        metrics[name] = {
            **score(result.model, request, digits.test, reference.model, seed),
            "seconds": result.seconds,
            "speedup": reference.seconds / result.seconds,
        }
        reports[name] = {k: v for k, v in result.report.items() if k != "per_sample_columns"}
        steps.update()
    steps.close()
    return {"metrics": metrics, "reports": reports}
