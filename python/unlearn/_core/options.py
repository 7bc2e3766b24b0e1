"""One way to check an option, declared by its type annotation.

A wrong type raises `TypeError`, a wrong value `ValueError`; both name the
option. Annotations understood: `bool`, `int` (not bool), `float` (any finite
real, not bool), `str`, classes (isinstance), `Literal[...]` (the choices),
`Optional`/`Union` (any member), and `Annotated[T, Range(...)]` for bounds.
The aliases below name the common bounded kinds.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

# `X | Y` annotations (Python 3.10+) have their own origin.
_UNIONS = (Union, getattr(types, "UnionType", Union))


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range:
    """Bounds of a number; `low_open`/`high_open` exclude the bound itself."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        return " and ".join(parts)


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]
NonNegative = Annotated[float, Range(0)]
OpenFraction = Annotated[float, Range(0, 1, low_open=True, high_open=True)]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in _UNIONS:
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    if annotation is type(None):
        return "None"
    if annotation is float:
        return "a number"
    if annotation is int:
        return "an int"
    if annotation is bool:
        return "a bool"
    if annotation is str:
        return "a str"
    name = getattr(origin or annotation, "__name__", str(origin or annotation))
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` has the type `annotation` asks for (bounds aside)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin is Annotated:
        return _accepts(typing.get_args(annotation)[0], value)
    if origin in _UNIONS:
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if origin is Literal:
        return any(type(value) is type(c) for c in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return _is_int(value)
    if annotation is float:
        return _is_real(value)
    if origin is not None and isinstance(origin, type):
        return isinstance(value, origin)
    if origin is typing.Callable or annotation is typing.Callable:
        return callable(value)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def _matching(annotation: Any, value: Any) -> Any:
    """The member of a Union that `value` matches (the annotation itself otherwise)."""
    if typing.get_origin(annotation) in _UNIONS:
        for member in typing.get_args(annotation):
            if _accepts(member, value):
                return _matching(member, value)
    return annotation


def check_option(name: str, value: Any, annotation: Any) -> None:
    """Raises TypeError when `value` is not of the annotated type and
    ValueError when it lies outside its choices or bounds (numbers must
    also be finite); both messages name the option."""
    if not _accepts(annotation, value):
        raise TypeError(f"{name} must be {_type_name(annotation)}, got {type(value).__name__}")
    annotation = _matching(annotation, value)
    origin = typing.get_origin(annotation)
    if origin is Literal and value not in typing.get_args(annotation):
        raise ValueError(f"{name} must be {_type_name(annotation)}, got {value!r}")
    base, bounds = annotation, None
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        bounds = next((e for e in extras if isinstance(e, Range)), None)
    if base is float and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if bounds is not None and value not in bounds:
        raise ValueError(f"{name} must be {bounds}, got {value!r}")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_int64(name: str, value: Any, op: Optional[str] = None) -> int:
    """An int (not a bool) in int64's range, as a Python int: what an op's
    `int` argument takes (torch refuses others without naming them).
    Messages name the argument, after the op's name when given."""
    check_option(name, value, int)
    if not INT64_MIN <= value <= INT64_MAX:
        prefix = f"{op}: " if op else ""
        raise ValueError(f"{prefix}{name} must fit in int64 (between -2**63 and 2**63 - 1), got {value}")
    return int(value)


def check_seed(seed: Any, name: str = "seed", op: Optional[str] = None) -> int:
    """A seed is an int64 (not a bool); returns it as a Python int."""
    return check_int64(name, seed, op)
