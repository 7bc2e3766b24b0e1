"""The bottom layer: request types and their validation, option checks,
stage timing, progress, and calling the user's functions. It imports nothing
else from the package."""

from .calls import import_callable, takes_seed
from .options import (
    NonNegative,
    NonNegativeInt,
    OpenFraction,
    Positive,
    PositiveInt,
    Range,
    check_int64,
    check_option,
    check_seed,
)
from .progress import progress, progress_bar
from .request import (
    Data,
    ForgetResult,
    Split,
    as_split,
    batch_pair,
    check_fits,
    check_model,
    class_request,
    eval_mode,
    model_device,
    output_classes,
    preserved_rng,
    validate_classes,
)
from .timing import StageTimer

__all__ = [
    "Data",
    "ForgetResult",
    "NonNegative",
    "NonNegativeInt",
    "OpenFraction",
    "Positive",
    "PositiveInt",
    "Range",
    "Split",
    "StageTimer",
    "as_split",
    "batch_pair",
    "check_fits",
    "check_int64",
    "check_model",
    "check_option",
    "check_seed",
    "class_request",
    "eval_mode",
    "import_callable",
    "model_device",
    "output_classes",
    "preserved_rng",
    "progress",
    "progress_bar",
    "takes_seed",
    "validate_classes",
]
