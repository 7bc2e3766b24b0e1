"""Pure-PyTorch twins of the torch.ops.unlearn kernels.

Each twin states the op's semantics in plain tensor code: it is the oracle the
compiled kernels are tested against, and the fallback when they are missing.
They favour clarity over speed (dense distance blocks).
"""

from .block_solve import block_solve
from .channel_means import channel_means
from .codec import codec
from .codec_select import codec_select
from .codec_step import codec_step
from .nearest_neighbor import nearest_neighbor
from .perturb import perturb

__all__ = ["block_solve", "channel_means", "codec", "codec_select", "codec_step", "nearest_neighbor", "perturb"]
