"""Unlearning methods, registered by name behind `unlearn.forget()`.

`describe(name)` says what a method serves and needs and lists its options.
`RETAIN_TOLERANCE` is the fall of the retained accuracy, `RETAIN_LOSS_GROWTH`
the growth of the retained loss, past which `forget()` warns; `FORGET_KEPT`
the share of their accuracy a class request's classes may keep before it warns.
"""

from .._core import FORGET_KEPT, RETAIN_LOSS_GROWTH, RETAIN_TOLERANCE
from . import (  # noqa: F401  (each module registers its methods)
    bad_teacher,
    boundary,
    fisher_forgetting,
    gradient_baselines,
    l1_sparse,
    l2ul,
    lcodec,
    mnemonic,
    retrain,
    salun,
    scrub,
    ssd,
    svd_projection,
    unsir,
)
from .registry import applicable, available, describe, register
from .runner import forget

__all__ = [
    "FORGET_KEPT",
    "RETAIN_LOSS_GROWTH",
    "RETAIN_TOLERANCE",
    "applicable",
    "available",
    "describe",
    "forget",
    "register",
]
