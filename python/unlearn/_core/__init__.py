"""The bottom layer: request types and their validation, option checks,
stage timing, progress, calling the user's functions and the retained-quality
threshold. It imports nothing else from the package."""

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
from .quality import RETAIN_LOSS_GROWTH, RETAIN_TOLERANCE, QualityWarning
from .request import (
    Data,
    ForgetResult,
    Split,
    batch_bounds,
    batch_pair,
    check_model,
    eval_mode,
    model_device,
    output_classes,
    preserved_rng,
    seeded_rng,
    validate_classes,
)
from .stream import READ_BATCH, Samples, Stream, as_split, check_fits, class_request, first_inputs, joined, materialise
from .timing import StageTimer

__all__ = [
    "READ_BATCH",
    "Data",
    "ForgetResult",
    "NonNegative",
    "NonNegativeInt",
    "OpenFraction",
    "Positive",
    "PositiveInt",
    "QualityWarning",
    "RETAIN_LOSS_GROWTH",
    "RETAIN_TOLERANCE",
    "Range",
    "Samples",
    "Split",
    "StageTimer",
    "Stream",
    "as_split",
    "batch_bounds",
    "batch_pair",
    "check_fits",
    "check_int64",
    "check_model",
    "check_option",
    "check_seed",
    "class_request",
    "eval_mode",
    "first_inputs",
    "import_callable",
    "joined",
    "materialise",
    "model_device",
    "output_classes",
    "preserved_rng",
    "progress",
    "progress_bar",
    "seeded_rng",
    "takes_seed",
    "validate_classes",
]
