"""Unlearning methods, registered by name behind unlearn.forget()."""

from . import lcodec, retrain  # noqa: F401  (register the methods)
from .base import ForgetResult, Split, available, forget, register

__all__ = ["ForgetResult", "Split", "available", "forget", "register"]
