"""The registry of unlearning methods by name.

A method is a function `fn(model, *, forget, retain, forget_classes, seed,
**options) -> report dict` that changes `model` (a private copy) in place.
It declares, when registered, which requests it serves (`scope`), what it
needs (`needs`), and its options: every keyword after `seed`, with a default,
a type annotation that `unlearn._core.check_option` enforces, and one line in
the docstring's `Options:` section. It may name the options that control
the damage it can do to the retained data (`controls`): `unlearn.forget`
names them when it warns. `unlearn.forget` does the plumbing.
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable

from .._core import check_option

SCOPES = ("instance", "class", "any")
NEEDS = {
    "forget": "the samples to forget (forget=..., or forget_classes with retain=...)",
    "retain": "the retained data (retain=...)",
    "mnemonic_codes": "a model trained with MnemonicCodes, and those codes (codes=...)",
}
# The arguments every method takes; the keywords after them are its options.
REQUEST_ARGUMENTS = ("model", "forget", "retain", "forget_classes", "seed")


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    annotation: Any
    doc: str


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., dict]
    description: str
    scope: str
    needs: tuple[str, ...]
    options: dict[str, Option]
    controls: tuple[str, ...] = ()

    def check_options(self, options: dict[str, Any]) -> None:
        """Unknown options raise ValueError listing the valid ones; known ones
        are checked against their annotations."""
        unknown = [name for name in options if name not in self.options]
        if unknown:
            valid = ", ".join(f"{o.name}={o.default!r}" for o in self.options.values())
            raise ValueError(f"{self.name} has no option {unknown[0]!r}; its options (with defaults) are: {valid}")
        for name, value in options.items():
            check_option(name, value, self.options[name].annotation)

    def control_values(self, options: dict[str, Any]) -> dict[str, Any]:
        """The value of each controlling option in a call given `options`."""
        return {name: options.get(name, self.options[name].default) for name in self.controls}


_REGISTRY: dict[str, Method] = {}


def option_docs(fn: Callable) -> dict[str, str]:
    """The first line of each entry of the docstring's `Options:` section."""
    doc = inspect.getdoc(fn) or ""
    section = re.search(r"^Options:\n((?:[ \t]+.*\n?|\n)*)", doc, re.M)
    if section is None:
        return {}
    return dict(re.findall(r"^[ \t]{2,4}(\w+): (.*)$", section.group(1), re.M))


def _options(fn: Callable, method: str) -> dict[str, Option]:
    parameters = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in parameters[: len(REQUEST_ARGUMENTS)]]
    if names != list(REQUEST_ARGUMENTS):
        raise TypeError(f"method {method!r} must take ({', '.join(REQUEST_ARGUMENTS)}, *, options...), got {names}")
    hints = typing.get_type_hints(fn, include_extras=True)
    docs = option_docs(fn)
    options = {}
    for p in parameters[len(REQUEST_ARGUMENTS) :]:
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty:
            raise TypeError(f"method {method!r}: option {p.name!r} must be keyword-only with a default")
        options[p.name] = Option(p.name, p.default, hints.get(p.name, Any), docs.get(p.name, ""))
    return options


def _check_controls(controls: tuple[str, ...], options: dict[str, Option], method: str) -> None:
    """Every controlling option is an option of the method."""
    if isinstance(controls, str) or not all(isinstance(c, str) for c in controls):
        raise TypeError(f"controls must be a tuple of option names, got {controls!r}")
    unknown = [c for c in controls if c not in options]
    if unknown:
        known = ", ".join(options) or "none"
        raise ValueError(f"controls: {unknown[0]!r} is not an option of method {method!r}; its options: {known}")


def register(
    name: str,
    description: str,
    scope: str = "any",
    *,
    needs: tuple[str, ...] = (),
    controls: tuple[str, ...] = (),
    force: bool = False,
):
    """Registers the decorated method under `name`. `scope` is the requests
    it serves ("instance": samples, "class": whole classes, "any"); `needs`
    lists what a request must bring (keys of `NEEDS`); `controls` names the
    options that control the damage to the retained data, which a
    `QualityWarning` shows with their values. A name already taken is
    refused unless `force=True`."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(map(repr, SCOPES))}, got {scope!r}")
    unknown = [need for need in needs if need not in NEEDS]
    if unknown:
        raise ValueError(f"needs: unknown need {unknown[0]!r}; known: {', '.join(NEEDS)}")
    if name in _REGISTRY and not force:
        raise ValueError(f"a method named {name!r} is already registered; pass force=True to replace it")

    def add(fn: Callable[..., dict]) -> Callable[..., dict]:
        options = _options(fn, name)
        _check_controls(controls, options, name)
        _REGISTRY[name] = Method(name, fn, description, scope, tuple(needs), options, tuple(controls))
        return fn

    return add


def get(name: str) -> Method:
    """The registered method `name`; ValueError listing the names when unknown."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def available() -> dict[str, str]:
    """Registered method names with their one-line descriptions."""
    return {name: m.description for name, m in sorted(_REGISTRY.items())}


def applicable(kind: str) -> list[str]:
    """Registered methods that serve a request of this kind ("class" or
    "instance"), without the retraining reference."""
    if kind not in ("class", "instance"):
        raise ValueError(f"kind must be 'class' or 'instance', got {kind!r}")
    return [name for name, m in sorted(_REGISTRY.items()) if name != "retrain" and m.scope in (kind, "any")]


def describe(name: str) -> dict[str, Any]:
    """What method `name` serves and needs, each option with its default
    and one line of documentation, and the options that control its damage
    to the retained data."""
    method = get(name)
    return {
        "name": method.name,
        "description": method.description,
        "scope": method.scope,
        "needs": list(method.needs),
        "options": {o.name: {"default": o.default, "doc": o.doc} for o in method.options.values()},
        "controls": list(method.controls),
    }
