"""torch-unlearn: make a trained PyTorch model forget data.

The native ops live in torch.ops.unlearn; `backend()` says which
implementation each one runs on. `data` and `models` hold the embedded
default (scikit-learn's digits, small classifiers), `train()` builds the
cached default model (`train_mnemonic()` one trained with `MnemonicCodes`),
`forget()` runs an unlearning method by name and `evaluate()` scores the
unlearned model.
"""

from . import data, models
from ._ops import backend, compiled
from .data import digits
from .evaluation import evaluate
from .methods import ForgetResult, forget
from .mnemonic_codes import MnemonicCodes
from .stats import FociResult, codec, foci, standardize_columns
from .training import train, train_mnemonic

__version__ = "0.1.0"

__all__ = [
    "FociResult",
    "ForgetResult",
    "MnemonicCodes",
    "backend",
    "codec",
    "compiled",
    "data",
    "digits",
    "evaluate",
    "forget",
    "foci",
    "models",
    "standardize_columns",
    "train",
    "train_mnemonic",
]
