"""The native ops of torch.ops.unlearn, one typed function each.

Every op is declared once, in its module here (schema, twin, fake); the
compiled kernels come from `unlearn._C` and the pure-PyTorch twins from
`unlearn.ops.reference`. `backend()` says which one serves each device.
"""

from ._library import backend, compiled
from .block_solve import block_solve
from .channel_means import channel_means
from .codec import codec
from .codec_select import codec_select
from .codec_step import codec_step
from .nearest_neighbor import nearest_neighbor
from .perturb import perturb

__all__ = [
    "backend",
    "block_solve",
    "channel_means",
    "codec",
    "codec_select",
    "codec_step",
    "compiled",
    "nearest_neighbor",
    "perturb",
]
