"""unlearn::block_solve: block-diagonal damped solves (dense or low-rank blocks)."""

from __future__ import annotations

import torch

from ._library import declare
from .reference import block_solve as twin


def _fake(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    return torch.empty_like(g)


declare("block_solve(Tensor[] blocks, Tensor g, float damping, bool[] low_rank) -> Tensor", twin=twin, fake=_fake)


def block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    """Solves (A + damping I) x = g block by block, g (d,) split over the
    blocks in order. A dense block is A itself (d_b x d_b); a low-rank one is
    a factor U (m x d_b) with A = U^T U / m, solved by Woodbury when m < d_b.
    A float32 block forms its product in float32 (in g's dtype where its
    entries, past 2^40 or all below 2^-50, would take the products out of
    float32's range); the solve runs in g's dtype, g scaled by a power of two
    chosen with the block's largest diagonal entry, so that a solution
    within the dtype's range is found at any magnitude.

    Every input is checked (shapes, dtypes, devices, finite values, damping
    finite and >= 0, and > 0 for a factor with m < d_b; any strides). A dense
    block is taken as symmetric: only its lower triangle (diagonal included)
    is read, so a non-symmetric one is solved as its lower triangle mirrored.
    A block whose damped matrix is not positive definite, singular to
    rounding (where it is factored itself, dense or m >= d_b: a squared
    Cholesky pivot at most max(d_b, 16) eps times its own diagonal entry, eps
    of the factor's dtype or of g's for a dense block), or too
    ill-conditioned for a finite solution in g's dtype (a damping lost in
    rounding), is refused with a ValueError naming it."""
    return torch.ops.unlearn.block_solve(blocks, g, damping, low_rank)
