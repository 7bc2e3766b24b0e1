"""Unlearning methods side by side on one request, each scored against retraining.

`compare()` (exported as `unlearn.compare`) works on any model and data; the
digits experiment (`digits_request`, `compare_digits`, `run_digits`) runs it
on the embedded default for the `unlearn` command, and `compare_digits_seeds`
repeats the digits comparison over several model seeds (means, standard
deviations and the forget quality F). As `unlearn.compare` is the function,
import these names from this module: `from unlearn.compare import
digits_request`.
"""

from .digits import DIGITS_OPTIONS, SPECIAL_TRAINING, Request, compare_digits, digits_request, prepare, run_digits
from .runner import RetrainFunction, compare, resolve_methods
from .seeds import compare_digits_seeds

__all__ = [
    "DIGITS_OPTIONS",
    "SPECIAL_TRAINING",
    "Request",
    "RetrainFunction",
    "compare",
    "compare_digits",
    "compare_digits_seeds",
    "digits_request",
    "prepare",
    "resolve_methods",
    "run_digits",
]
