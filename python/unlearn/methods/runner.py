"""`forget()`: the plumbing every method shares, done once. It checks the
request and the options, builds the forget/retain samples of a class request,
runs the method on a private copy of the model and times it."""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any, Optional, Sequence

import torch
from torch import nn

from .._core import (
    Data,
    ForgetResult,
    Split,
    as_split,
    check_fits,
    check_model,
    check_option,
    check_seed,
    class_request,
    output_classes,
    preserved_rng,
    validate_classes,
)
from .registry import NEEDS, Method, get


def _request(
    spec: Method,
    model: nn.Module,
    forget: Optional[Data],
    retain: Optional[Data],
    forget_classes: Optional[Sequence[int]],
) -> tuple[Optional[Split], Optional[Split], Optional[list[int]]]:
    """The validated (forget, retain, forget_classes) that `spec` runs on."""
    if forget is None and forget_classes is None:
        raise ValueError("forget: give the samples to forget (forget=...) or the classes (forget_classes=...)")
    if spec.scope == "instance" and forget_classes is not None and forget is None:
        raise ValueError(f"method {spec.name!r} forgets samples, not classes: pass forget=(inputs, labels)")
    if spec.scope == "class" and forget_classes is None:
        raise ValueError(f"method {spec.name!r} forgets whole classes: pass forget_classes=[...]")
    splits = {"forget": as_split(forget, "forget", model), "retain": as_split(retain, "retain", model)}
    num_classes = None
    for name, split in splits.items():
        if split is not None:
            num_classes = num_classes or output_classes(model, split.inputs, name)
            check_fits(split, name, model, num_classes)
    forget_split, retain_split = splits["forget"], splits["retain"]
    if forget_classes is not None:
        forget_classes = validate_classes(forget_classes, num_classes)
        # Sample methods ignore the classes; the others take the classes' samples from retain.
        if spec.scope != "instance" and {"forget", "retain"} & set(spec.needs):
            forget_split, retain_split = class_request(forget_split, retain_split, forget_classes)
    for need, split in (("forget", forget_split), ("retain", retain_split)):
        if need in spec.needs and split is None:
            raise ValueError(f"{need}: {spec.name} needs {NEEDS[need]}")
    return forget_split, retain_split, forget_classes


def _brief(value: Any) -> str:
    return f"<tensor {tuple(value.shape)}>" if isinstance(value, torch.Tensor) else repr(value)


def _check_finite(spec: Method, model: nn.Module, options: dict[str, Any]) -> None:
    """No method hands back a model with a NaN or infinite weight or buffer."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    bad = [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        given = ", ".join(f"{k}={_brief(v)}" for k, v in options.items()) or "the defaults"
        raise ValueError(
            f"{spec.name} produced non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} with "
            f"{given}; the model was not changed. Options that set its steps: "
            f"{', '.join(spec.options) or 'none'} (unlearn.methods.describe({spec.name!r}))"
        )


def forget(
    model: nn.Module,
    method: str,
    *,
    forget: Optional[Data] = None,
    retain: Optional[Data] = None,
    forget_classes: Optional[Sequence[int]] = None,
    seed: int = 0,
    inplace: bool = False,
    **options: Any,
) -> ForgetResult:
    """Makes `model` forget the `forget` samples (or the `forget_classes`).

    `forget` and `retain` are DataLoaders or (inputs, labels) pairs on the
    model's device; for a class request, samples of the forget classes found
    in `retain` move to the forget side. `options` are the method's own
    (`unlearn.methods.describe(method)` lists them); an unknown one raises
    ValueError. The method works on a private copy: the caller's model is
    changed only when the call succeeds and `inplace=True`. The same `seed`
    gives the same result.
    """
    check_model(model)
    spec = get(method)
    seed = check_seed(seed)
    check_option("inplace", inplace, bool)
    spec.check_options(options)
    if "mnemonic_codes" in spec.needs and options.get("codes") is None:
        raise ValueError(f"codes: {spec.name} needs {NEEDS['mnemonic_codes']}")
    # Methods draw from their own seeded generators; the caller's RNG stream is left as it was.
    with preserved_rng(model):
        forget_split, retain_split, classes = _request(spec, model, forget, retain, forget_classes)
        work = copy.deepcopy(model)
        start = time.perf_counter()
        report = spec.fn(work, forget=forget_split, retain=retain_split, forget_classes=classes, seed=seed, **options)
        seconds = time.perf_counter() - start
    _check_finite(spec, work, options)
    if inplace:
        model.load_state_dict(work.state_dict())
        work = model
    return ForgetResult(model=work, report=report, seconds=seconds)
