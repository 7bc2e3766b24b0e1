"""Twin of unlearn::block_solve, block by block with the kernel's algorithm: a
Cholesky solve of a dense block or of a factor's U^T U (m >= d), the
Woodbury identity for a factor with m < d; a float32 block's product is
formed in float32, the solve in g's dtype. Only the lower triangle of a
dense block is read, as by the kernel. (Tests also hold both against dense
solves in float64.)"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .checks import FLOATS, fail


def check_block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> None:
    if not blocks:
        fail("block_solve", "blocks is empty")
    if len(low_rank) != len(blocks):
        fail("block_solve", f"low_rank has {len(low_rank)} entries but there are {len(blocks)} blocks")
    if not (math.isfinite(damping) and damping >= 0):
        fail("block_solve", f"damping must be finite and >= 0, got {float(damping)}")
    if g.dim() != 1:
        fail("block_solve", f"g must be a 1-D tensor, got {g.dim()} dimensions")
    if g.dtype not in FLOATS:
        fail("block_solve", f"g must be float32 or float64, got {g.dtype}")
    most = torch.finfo(g.dtype).max
    if damping > most:
        dtype = str(g.dtype).removeprefix("torch.")
        fail("block_solve", f"damping {float(damping)} overflows g's dtype ({dtype}, at most {most!r})")
    total = 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        if a.dim() != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            fail("block_solve", f"block {b} must be a non-empty 2-D tensor, got shape {tuple(a.shape)}")
        if not factored and a.shape[0] != a.shape[1]:
            fail("block_solve", f"block {b} is dense but not square: {tuple(a.shape)}")
        if a.dtype not in (g.dtype, torch.float32) or a.device != g.device:
            fail(
                "block_solve",
                f"block {b} must be on g's device ({g.device}) with g's dtype ({g.dtype}) or float32, "
                f"got {a.dtype} on {a.device}",
            )
        if factored and a.shape[0] < a.shape[1] and damping <= 0:
            fail("block_solve", f"block {b} has rank {a.shape[0]} < size {a.shape[1]}, so it needs damping > 0")
        total += a.shape[1]
    if g.shape[0] != total:
        fail("block_solve", f"g has {g.shape[0]} entries but the blocks cover {total} parameters")
    if not bool(torch.isfinite(g).all()):
        fail("block_solve", "g contains NaN or infinite values")
    for b, a in enumerate(blocks):
        if not bool(torch.isfinite(a).all()):
            fail("block_solve", f"block {b} contains NaN or infinite values")
    # A factor with m < d leaves the damping as the smallest eigenvalue: lost in
    # rounding next to the largest diagonal entry of U^T U / m, the damped
    # matrix is singular in g's dtype (the Woodbury solve divides by a damping
    # that no longer counts).
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        if not factored or a.shape[0] >= a.shape[1]:
            continue
        largest = _largest_diagonal(a, g.dtype)
        if bool(largest + damping == largest):
            fail(
                "block_solve",
                f"block {b} has rank {a.shape[0]} < size {a.shape[1]}, so it needs a damping not lost in rounding "
                f"next to its largest diagonal entry {float(largest)}, got {float(damping)}",
            )


def _largest_diagonal(a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The largest diagonal entry of U^T U / m in `dtype`, its column sums of
    squares summed over chunks of rows as the kernel sums them."""
    rows = max(1, (1 << 19) // a.shape[1])
    return (sum(part.to(dtype).square().sum(0) for part in a.split(rows)) / float(a.shape[0])).max()


def _singular(factor: torch.Tensor, h: torch.Tensor, dtype: torch.dtype) -> bool:
    """Some squared Cholesky pivot at most max(d, 16) eps (of `dtype`) times
    its own diagonal entry: singular to rounding, whatever the scaling."""
    tolerance = max(h.shape[-1], 16) * torch.finfo(dtype).eps
    return bool((factor.diagonal().square() <= h.diagonal() * tolerance).any())


def _moderate(g: torch.Tensor) -> float:
    """The power of two that brings g to a moderate scale, as the kernel
    scales its right-hand sides (the solve is linear): neither U g nor the
    triangular solves may underflow where g is tiny, or overflow where it is
    huge."""
    single = g.dtype == torch.float32
    small, large, lift = (2.0**-60, 2.0**60, 2.0**80) if single else (2.0**-500, 2.0**500, 2.0**600)
    size = float(g.abs().max())
    return lift if size < small else 1 / lift if size > large else 1.0


def _woodbury(a: torch.Tensor, g: torch.Tensor, damping: float) -> Optional[torch.Tensor]:
    """(U^T U / m + damping I)^-1 g = (g - U^T (damping I + U U^T / m)^-1 U g / m) / damping
    for a factor U with m < d: U U^T in U's dtype, the rest in g's; None
    where the m x m factorisation fails."""
    m, a = a.shape[0], a.contiguous()  # as the kernel forms the product, whatever the layout
    inner = (a @ a.T).to(g.dtype) / m + damping * torch.eye(m, dtype=g.dtype, device=g.device)
    factor, info = torch.linalg.cholesky_ex(inner)
    if info != 0:
        return None
    scale = _moderate(g)
    u, r = a.to(g.dtype), g[:, None] * scale
    w = torch.cholesky_solve(u @ r, factor)
    return ((r - u.T @ w / m) / damping)[:, 0] / scale


def block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    check_block_solve(blocks, g, damping, low_rank)
    out, offset = [], 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        d = a.shape[1]
        if factored and a.shape[0] < d:
            x = _woodbury(a, g[offset : offset + d], damping)
        else:
            h = (a.T @ a).to(g.dtype) / a.shape[0] if factored else a.to(g.dtype)  # the product in the block dtype
            h = h + damping * torch.eye(d, dtype=g.dtype, device=g.device)
            factor, info = torch.linalg.cholesky_ex(h)  # reads the lower triangle
            # A matrix singular to rounding is refused whether or not its factorisation passed.
            rounding = a.dtype if factored else g.dtype  # a factor's product carries its dtype's rounding
            refused = info != 0 or _singular(factor, h, rounding)
            part, scale = g[offset : offset + d], _moderate(g[offset : offset + d])
            x = None if refused else torch.cholesky_solve(part[:, None] * scale, factor)[:, 0] / scale
        # A factorisation that passed can still be too ill-conditioned for the dtype.
        if x is None or not bool(torch.isfinite(x).all()):
            kind = "low-rank" if factored else "dense"
            fail(
                "block_solve",
                f"block {b} ({kind}, {d} x {d}) is not positive definite after damping {float(damping)} "
                "(or singular to rounding, or too ill-conditioned for a finite solution)",
            )
        out.append(x)
        offset += d
    return torch.cat(out)
