"""The one option check: wrong type -> TypeError, wrong value -> ValueError,
both naming the option."""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import numpy as np
import pytest
import torch

from unlearn._core import NonNegative, OpenFraction, Positive, PositiveInt, Range, StageTimer, check_option, check_seed


@pytest.mark.parametrize(
    "annotation, value",
    [
        (PositiveInt, 3),
        (PositiveInt, np.int64(3)),
        (PositiveInt, 10**400),
        (Positive, 2),
        (Positive, 0.5),
        (NonNegative, 0.0),
        (OpenFraction, 0.5),
        (bool, False),
        (str, "x"),
        (Optional[Positive], None),
        (Literal["a", "b"], "b"),
        (Union[torch.Tensor, list], [1]),
        (tuple[float, float], (0.0, 1.0)),
    ],
)
def test_accepted(annotation, value):
    check_option("opt", value, annotation)


@pytest.mark.parametrize(
    "annotation, value, error, message",
    [
        (PositiveInt, 2.5, TypeError, "opt must be an int, got float"),
        (PositiveInt, True, TypeError, "opt must be an int, got bool"),
        (PositiveInt, 0, ValueError, "opt must be >= 1, got 0"),
        (Positive, "1", TypeError, "opt must be a number, got str"),
        (Positive, 0.0, ValueError, "opt must be > 0, got 0.0"),
        (Positive, math.nan, ValueError, "opt must be finite, got nan"),
        (Positive, math.inf, ValueError, "opt must be finite, got inf"),
        (NonNegative, -1e-9, ValueError, "opt must be >= 0"),
        (OpenFraction, 1.0, ValueError, "opt must be > 0 and < 1, got 1.0"),
        (bool, 1, TypeError, "opt must be a bool, got int"),
        (Optional[PositiveInt], 0, ValueError, "opt must be >= 1"),
        (Optional[PositiveInt], "3", TypeError, "opt must be an int or None, got str"),
        (Literal["a", "b"], "c", ValueError, "opt must be one of 'a', 'b', got 'c'"),
        (Literal["a", "b"], 1, TypeError, "opt must be one of 'a', 'b', got int"),
        (torch.Tensor, [1.0], TypeError, "opt must be a Tensor, got list"),
    ],
)
def test_refused(annotation, value, error, message):
    with pytest.raises(error, match=f"^{message}"):
        check_option("opt", value, annotation)


def test_ranges_describe_and_hold_their_bounds():
    closed = Range(0, 1)
    assert 0 in closed and 1 in closed and 1.5 not in closed
    assert str(closed) == ">= 0 and <= 1"
    assert 0 not in Range(0, low_open=True) and str(Range(high=5, high_open=True)) == "< 5"


def test_seeds_are_ints():
    assert check_seed(np.int32(7)) == 7 and type(check_seed(np.int32(7))) is int
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        check_seed(1.0)


def test_the_stage_timer_adds_up_repeated_stages():
    timer = StageTimer()
    for _ in range(2):
        with timer("a"):
            pass
    with pytest.raises(RuntimeError), timer("b"):
        raise RuntimeError
    assert list(timer.seconds) == ["a", "b"] and all(t >= 0 for t in timer.seconds.values())
