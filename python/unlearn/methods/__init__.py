"""Unlearning methods, registered by name behind `unlearn.forget()`.

`describe(name)` says what a method serves and needs and lists its options.
"""

from . import (  # noqa: F401  (each module registers its methods)
    fisher_forgetting,
    gradient_baselines,
    l2ul,
    lcodec,
    mnemonic,
    retrain,
    ssd,
    svd_projection,
)
from .registry import applicable, available, describe, register
from .runner import forget

__all__ = ["applicable", "available", "describe", "forget", "register"]
