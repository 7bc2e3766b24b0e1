"""torch-unlearn: make a trained PyTorch model forget data.

`forget()` runs an unlearning method by name on a model and its data
(`Split` or DataLoaders) and warns with `QualityWarning` when that costs the
retained data more than 5 points of accuracy, `evaluate()` scores the result and `compare()`
runs several methods on one request next to retraining, and `audit()`
measures per forget example, over many models, how close each method comes
to retraining. The native ops
live in torch.ops.unlearn, one typed function each in `unlearn.ops`;
`backend()` says which implementation serves each device. `data` and
`models` hold the embedded default (scikit-learn's digits, small
classifiers), `train()` builds the cached default model (`train_mnemonic()`
one trained with `MnemonicCodes`).
"""

from . import data, models, ops
from ._core import ForgetResult, QualityWarning, Split
from .audit import audit
from .compare import compare
from .data import digits
from .ensemble import train_ensemble
from .evaluation import evaluate
from .methods import forget
from .mnemonic_codes import MnemonicCodes
from .ops import backend, compiled
from .stats import FociResult, codec, foci, standardize_columns
from .training import train, train_mnemonic

__version__ = "0.1.0"

__all__ = [
    "FociResult",
    "ForgetResult",
    "MnemonicCodes",
    "QualityWarning",
    "Split",
    "audit",
    "backend",
    "codec",
    "compare",
    "compiled",
    "data",
    "digits",
    "evaluate",
    "forget",
    "foci",
    "models",
    "ops",
    "standardize_columns",
    "train",
    "train_ensemble",
    "train_mnemonic",
]
