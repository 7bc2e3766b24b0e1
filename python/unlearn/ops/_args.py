"""Checks the typed wrappers make before calling an op: an int argument
beyond int64 would be refused by torch's op call with an error that does not
name it."""

from __future__ import annotations

from typing import Any

from .._core import check_option

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def int64(op: str, name: str, value: Any) -> int:
    """An int (not a bool) in int64's range, as a Python int; a TypeError or
    ValueError naming `name` otherwise."""
    check_option(name, value, int)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{op}: {name} must fit in int64 (between -2**63 and 2**63 - 1), got {value}")
    return int(value)
