"""Calling the user's functions."""

from __future__ import annotations

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
