"""torch-unlearn: make a trained PyTorch model forget data.

The native ops live in torch.ops.unlearn; `backend()` says which
implementation each one runs on.
"""

from ._ops import backend, compiled
from .stats import FociResult, codec, foci, standardize_columns

__version__ = "0.1.0"

__all__ = ["FociResult", "backend", "codec", "compiled", "foci", "standardize_columns"]
