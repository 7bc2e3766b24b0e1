"""Calling the user's functions, and finding them from an import spec."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable


def takes_seed(fn: Callable[..., Any]) -> bool:
    """Whether `fn` can be called with `seed=` (a `seed` parameter or **kwargs);
    False when it has no signature to read (call it with the data alone)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "seed" or p.kind is p.VAR_KEYWORD for p in parameters)


def import_callable(spec: str, name: str) -> Callable[..., Any]:
    """The callable `spec` names as "package.module:attribute" (the attribute
    may be dotted: "module:Class.method"), imported with importlib from
    sys.path. A spec without a colon, a module that cannot be imported, a
    missing attribute or one that is not callable raise ValueError naming
    `name`, the argument the spec came from."""
    if not isinstance(spec, str):
        raise TypeError(f"{name} must be a str 'package.module:function', got {type(spec).__name__}")
    module_name, colon, attribute = spec.partition(":")
    if not (colon and module_name.strip() and attribute.strip()):
        raise ValueError(f"{name} must be 'package.module:function', got {spec!r}")
    module_name = module_name.strip()
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        hint = ": run from the folder that holds it, or install it" if error.name == module_name else ""
        raise ValueError(f"{name}: cannot import {module_name!r} ({error}){hint}") from error
    for part in attribute.strip().split("."):
        if not hasattr(found, part):
            raise ValueError(f"{name}: {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise ValueError(f"{name}: {spec!r} is not callable (it is a {type(found).__name__})")
    return found
