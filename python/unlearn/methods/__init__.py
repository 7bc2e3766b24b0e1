"""Unlearning methods, registered by name behind unlearn.forget(). Every
module of this package registers its methods when imported."""

import importlib
import pkgutil

from .base import ForgetResult, Split, available, forget, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ForgetResult", "Split", "available", "forget", "register"]
