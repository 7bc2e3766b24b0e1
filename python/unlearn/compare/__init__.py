"""Unlearning methods side by side on one request, each scored against retraining.

`compare()` (exported as `unlearn.compare`) works on any model and data, once
or over several seeds (`seeds.summarise`: means, standard deviations and the
forget quality F), and writes its result as JSON and as a plot (`display`);
`user_model` and `user_data` build a user's model and data from the functions
the `unlearn compare` command is given. The digits experiment
(`digits_request`, `compare_digits`, `compare_digits_seeds`, `run_digits`)
runs it on the embedded default. As `unlearn.compare` is the function, import
these names from this module: `from unlearn.compare import digits_request`.
"""

from .digits import (
    DIGITS_OPTIONS,
    SPECIAL_TRAINING,
    compare_digits,
    compare_digits_seeds,
    digits_request,
    prepare,
    run_digits,
)
from .display import plot_comparison, plot_run, write_json
from .requests import Request, draw_request
from .runner import RetrainFunction, check_options, compare, resolve_methods
from .seeds import summarise
from .user import user_data, user_model

__all__ = [
    "DIGITS_OPTIONS",
    "SPECIAL_TRAINING",
    "Request",
    "RetrainFunction",
    "check_options",
    "compare",
    "compare_digits",
    "compare_digits_seeds",
    "digits_request",
    "draw_request",
    "plot_comparison",
    "plot_run",
    "prepare",
    "resolve_methods",
    "run_digits",
    "summarise",
    "user_data",
    "user_model",
    "write_json",
]
