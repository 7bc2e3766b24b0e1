"""`forget()`: the plumbing every method shares, done once. It checks the
request and the options, builds the forget/retain samples of a class request,
runs the method on a private copy of the model, times it, and checks what it
cost the retained data."""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from typing import Any, Optional, Sequence

import torch
from torch import nn

from .._core import (
    FORGET_KEPT,
    RETAIN_LOSS_GROWTH,
    RETAIN_TOLERANCE,
    Data,
    ForgetResult,
    QualityWarning,
    Samples,
    Split,
    as_split,
    check_fits,
    check_model,
    check_option,
    check_seed,
    class_request,
    first_inputs,
    model_device,
    output_classes,
    seeded_rng,
    validate_classes,
)
from ..units import inference_batch
from .quality import CHECK_BATCH, CHECK_SAMPLES, retained_sample, retained_scores
from .registry import NEEDS, Method, get


def _request(
    spec: Method,
    model: nn.Module,
    forget: Optional[Data],
    retain: Optional[Data],
    forget_classes: Optional[Sequence[int]],
) -> tuple[Optional[Samples], Optional[Samples], Optional[list[int]]]:
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
            num_classes = num_classes or output_classes(model, first_inputs(split), name)
            check_fits(split, name, model, num_classes)
    forget_split, retain_split = splits["forget"], splits["retain"]
    if forget_classes is not None:
        forget_classes = validate_classes(forget_classes, num_classes)
        # Sample methods ignore the classes; the others take the classes' samples from retain.
        if spec.scope != "instance" and _reads_data(spec):
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


def _check_samples(
    spec: Method, forget: Optional[Samples], retain: Optional[Samples], classes: Optional[list[int]], seed: int
) -> tuple[Optional[Split], Optional[Split]]:
    """The samples `forget()` scores before and after the method, up to
    CHECK_SAMPLES of each drawn with `seed`: retained ones, without the forget
    classes' samples of a class request, and those forget classes' samples
    (None for a sample request). A method that reads no data leaves the
    classes' samples in `retain`; they are split off here."""
    if classes is None or spec.scope == "instance":
        return retained_sample(retain, seed, CHECK_SAMPLES), None
    if not _reads_data(spec):
        forget, retain = (None, None) if retain is None else class_request(None, retain, classes)
    return retained_sample(retain, seed, CHECK_SAMPLES), retained_sample(forget, seed, CHECK_SAMPLES)


def _check_batch(spec: Method, options: dict[str, Any], model: nn.Module, samples: list[Optional[Split]]) -> int:
    """Samples a batch of `forget()`'s checks takes: CHECK_BATCH, or fewer
    where the method takes a memory budget (a `memory_budget` option) and a
    forward pass of CHECK_BATCH would not fit in the one it is called with."""
    option = spec.options.get("memory_budget")
    given = [s for s in samples if s is not None]
    if option is None or not given:
        return CHECK_BATCH
    return inference_batch(model, given[0].inputs[0], options.get("memory_budget", option.default), CHECK_BATCH)


def _forget_check(
    model: nn.Module, sample: Optional[Split], before: Optional[tuple[float, float]], batch: int
) -> Optional[dict]:
    """Accuracy on the forget classes' checked samples before and after."""
    if sample is None or before is None:
        return None
    return {
        "samples": len(sample),
        "accuracy_before": before[0],
        "accuracy_after": retained_scores(model, sample, batch)[0],
    }


def _reads_data(spec: Method) -> bool:
    return bool({"forget", "retain"} & set(spec.needs))


def _retain_check(
    model: nn.Module, sample: Optional[Split], before: Optional[tuple[float, float]], batch: int
) -> Optional[dict]:
    """Accuracy and mean cross-entropy on the checked samples before and
    after the method (None without retained data)."""
    if sample is None or before is None:
        return None
    after = retained_scores(model, sample, batch)
    return {
        "samples": len(sample),
        "accuracy_before": before[0],
        "accuracy_after": after[0],
        "loss_before": before[1],
        "loss_after": after[1],
    }


def _loss_bound(start: float) -> float:
    factor, nats = RETAIN_LOSS_GROWTH
    return max(factor * start, start + nats)


def _damage(report: dict[str, Any]) -> list[str]:
    """What the report shows the method did to the retained data, in words."""
    found = []
    check, guard = report["retain_check"], report.get("guard")
    if check is not None and math.isfinite(check["loss_before"]) and not math.isfinite(check["loss_after"]):
        found.append(f"the retained loss became {check['loss_after']}")
    elif check is not None and check["accuracy_before"] - check["accuracy_after"] > RETAIN_TOLERANCE:
        found.append(
            f"the retained accuracy fell from {check['accuracy_before']:.3f} to {check['accuracy_after']:.3f} "
            f"(by more than {RETAIN_TOLERANCE * 100:g} points) on {check['samples']} retained samples"
        )
    elif check is not None and check["loss_after"] > _loss_bound(check["loss_before"]):
        found.append(
            f"the retained loss rose from {check['loss_before']:.3f} to {check['loss_after']:.3f} (past "
            f"{RETAIN_LOSS_GROWTH[0]:g} x its start and its start + {RETAIN_LOSS_GROWTH[1]:g}) on "
            f"{check['samples']} retained samples: held-out accuracy usually falls further than the retained "
            "accuracy shows"
        )
    if isinstance(guard, dict) and guard.get("stopped_early"):
        found.append(
            f"its guard stopped it early after {guard['backoffs']} halvings of lr (to {guard['lr']:g}), at the "
            "last state that kept the retained accuracy and finite values, so it may have forgotten less than asked"
        )
    return found


def _little_forgotten(report: dict[str, Any]) -> list[str]:
    """A class request whose forget classes kept more than FORGET_KEPT of
    their accuracy, in words."""
    check = report.get("forget_check")
    if check is None or check["accuracy_after"] <= FORGET_KEPT * check["accuracy_before"]:
        return []
    return [
        f"the forget classes' accuracy went from {check['accuracy_before']:.3f} to {check['accuracy_after']:.3f} on "
        f"{check['samples']} of their samples, where a model retrained without them scores about 0: it forgot "
        "little (too few steps or too small a learning rate for this data)"
    ]


def _warn(spec: Method, report: dict[str, Any], options: dict[str, Any]) -> None:
    """A QualityWarning naming the damage, or a class request barely
    forgotten, and the options that control it."""
    damage, little = _damage(report), _little_forgotten(report)
    if damage or little:
        controls = ", ".join(f"{k}={_brief(v)}" for k, v in spec.control_values(options).items())
        what = "the damage" if damage else "how much it forgets"
        warnings.warn(
            f"{spec.name}: {'; '.join(damage + little)}. Options that control {what}: {controls or 'none declared'} "
            f"(unlearn.methods.describe({spec.name!r}))",
            QualityWarning,
            stacklevel=3,
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

    `forget` and `retain` are DataLoaders, Datasets or (inputs, labels)
    pairs of tensors on the model's device. DataLoaders and Datasets are read
    batch by batch, never gathered whole, each batch moved to the model's
    device (docs/data.md says which methods keep what in memory); they are
    read afresh on every pass, so augmentation is drawn per pass. For a
    class request, samples of the forget classes found in `retain` move to
    the forget side. `options` are the method's own
    (`unlearn.methods.describe(method)` lists them); an unknown one raises
    ValueError. The method works on a private copy: the caller's model is
    changed only when the call succeeds and `inplace=True`. The same `seed`
    gives the same result.

    With retained data, the report's "retain_check" holds the accuracy and
    mean cross-entropy on up to CHECK_SAMPLES retained samples (drawn with
    `seed`) before and after; a fall of the accuracy by more than
    RETAIN_TOLERANCE, a loss that becomes non-finite, or a guard that stopped
    the method early, is a `QualityWarning` naming the method's controlling
    options. Without retained data "retain_check" is None: nothing was checked.
    """
    check_model(model)
    spec = get(method)
    seed = check_seed(seed)
    check_option("inplace", inplace, bool)
    spec.check_options(options)
    if "mnemonic_codes" in spec.needs and options.get("codes") is None:
        raise ValueError(f"codes: {spec.name} needs {NEEDS['mnemonic_codes']}")
    # Methods draw from their own seeded generators, and a DataLoader's shuffling and augmentation
    # from torch's RNG seeded with `seed`; the caller's RNG stream is left as it was.
    with seeded_rng(seed, model_device(model)):
        forget_split, retain_split, classes = _request(spec, model, forget, retain, forget_classes)
        work = copy.deepcopy(model)
        sample, gone = _check_samples(spec, forget_split, retain_split, classes, seed)
        batch = _check_batch(spec, options, work, [sample, gone])
        before = None if sample is None else retained_scores(work, sample, batch)
        gone_before = None if gone is None else retained_scores(work, gone, batch)
        start = time.perf_counter()
        report = spec.fn(work, forget=forget_split, retain=retain_split, forget_classes=classes, seed=seed, **options)
        seconds = time.perf_counter() - start
    _check_finite(spec, work, options)
    report["retain_check"] = _retain_check(work, sample, before, batch)
    report["forget_check"] = _forget_check(work, gone, gone_before, batch)
    _warn(spec, report, options)
    if inplace:
        model.load_state_dict(work.state_dict())
        work = model
    return ForgetResult(model=work, report=report, seconds=seconds)
