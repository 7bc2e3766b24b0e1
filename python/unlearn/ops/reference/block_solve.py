"""Twin of unlearn::block_solve: one Cholesky solve per block, no Woodbury; a
float32 block's product is formed in float32, the solve in g's dtype. Only the
lower triangle of a dense block is read, as by the kernel."""

from __future__ import annotations

import math

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
    # A factor with m < d leaves the damping as the smallest eigenvalue. Next to
    # the largest diagonal entry of U^T U / m it must stand out of the rounding
    # of a solve in g's dtype (the bound of the Cholesky pivots of the kernel's
    # dense blocks); below it the twin's factorisation passes or fails on noise
    # while the kernel's Woodbury solve still returns.
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        if not factored or a.shape[0] >= a.shape[1]:
            continue
        largest = _largest_diagonal(a, g.dtype)
        tolerance = max(a.shape[1], 16) * torch.finfo(g.dtype).eps
        if bool(largest * tolerance >= damping):
            fail(
                "block_solve",
                f"block {b} has rank {a.shape[0]} < size {a.shape[1]}, so it needs a damping above max(d, 16) eps = "
                f"{tolerance!r} times its largest diagonal entry {float(largest)}, got {float(damping)}",
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


def block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    check_block_solve(blocks, g, damping, low_rank)
    out, offset = [], 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        d = a.shape[1]
        if factored and a.shape[0] < d:  # the kernel's Woodbury solve never forms U^T U: formed in g's dtype
            h = a.to(g.dtype).T @ a.to(g.dtype) / a.shape[0]
        else:  # the product in the block's dtype, as the kernel forms it
            h = (a.T @ a).to(g.dtype) / a.shape[0] if factored else a.to(g.dtype)
        h = h + damping * torch.eye(d, dtype=g.dtype, device=g.device)
        factor, info = torch.linalg.cholesky_ex(h)  # reads the lower triangle
        # Where the kernel factors h itself (not by Woodbury), a matrix singular
        # to rounding is refused whether or not its factorisation passed.
        rounding = a.dtype if factored else g.dtype  # a factor's product carries its dtype's rounding
        refused = info != 0 or ((not factored or a.shape[0] >= d) and _singular(factor, h, rounding))
        x = None if refused else torch.cholesky_solve(g[offset : offset + d, None], factor)[:, 0]
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
