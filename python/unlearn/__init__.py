"""torch-unlearn: make a trained PyTorch model forget data.

The native ops live in torch.ops.unlearn; `backend()` says which
implementation each one runs on. `data` and `models` hold the embedded
default (scikit-learn's digits, small classifiers), `train()` builds the
cached default model, and `evaluate()` scores an unlearned model.
"""

from . import data, models
from ._ops import backend, compiled
from .data import digits
from .evaluation import evaluate
from .stats import FociResult, codec, foci, standardize_columns
from .training import train

__version__ = "0.1.0"

__all__ = [
    "FociResult",
    "backend",
    "codec",
    "compiled",
    "data",
    "digits",
    "evaluate",
    "foci",
    "models",
    "standardize_columns",
    "train",
]
