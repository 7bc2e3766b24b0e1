"""Twin of unlearn::block_solve, block by block with the kernel's algorithm: a
Cholesky solve of a dense block or of a factor's U^T U (m >= d), the
Woodbury identity for a factor with m < d; a float32 block's product is
formed in float32, the solve in g's dtype. Only the lower triangle of a
dense block is read, as by the kernel. (Tests also hold both against dense
solves in float64.)"""

from __future__ import annotations

import math
from functools import partial
from typing import Optional

import torch

from .checks import FLOATS, all_finite, fail


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
    if not all_finite(g):
        fail("block_solve", "g contains NaN or infinite values")
    for b, a in enumerate(blocks):
        if not all_finite(a):
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


def _product_dtype(a: torch.Tensor, g_dtype: torch.dtype) -> torch.dtype:
    """The dtype a factor's product is formed in: its own, but g's where a
    float32 factor's entries would over- or underflow float32 products."""
    if a.dtype == g_dtype or a.numel() == 0:
        return a.dtype
    low, high = torch.aminmax(a)
    top = float(torch.maximum(high, -low))
    return g_dtype if top > 2.0**40 or top < 2.0**-50 else a.dtype


def _scale(a: torch.Tensor, factored: bool, g: torch.Tensor, damping: float) -> torch.Tensor:
    """2^k, the kernel's scale of g before the solve (which is linear): g's
    largest entry brought to about the square root of the block's largest
    diagonal entry plus the damping, so that g, the solution and U g all
    stay in range (k = 0 where either is 0 or not finite)."""
    size = g.abs().max().double()
    top = _largest_diagonal(a, torch.float64) if factored else a.diagonal().abs().max().double()
    lam = top + damping
    k = torch.round(0.5 * torch.log2(lam) - torch.log2(size)).clamp(-1000, 1000)
    usable = (size > 0) & (lam > 0) & torch.isfinite(lam) & torch.isfinite(k)
    return torch.exp2(torch.where(usable, k, torch.zeros_like(k)))


def _solve_scaled(solve, a: torch.Tensor, factored: bool, g: torch.Tensor, damping: float) -> torch.Tensor:
    """solve(r) for g scaled by `_scale`, scaled back."""
    scale = _scale(a, factored, g, damping)
    return (solve((g.double() * scale).to(g.dtype)).double() / scale).to(g.dtype)


def _cholesky_solve(factor: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.cholesky_solve(r[:, None], factor)[:, 0]


def _woodbury(a: torch.Tensor, g: torch.Tensor, damping: float) -> Optional[torch.Tensor]:
    """(U^T U / m + damping I)^-1 g = (g - U^T (damping I + U U^T / m)^-1 U g / m) / damping
    for a factor U with m < d: U U^T in `_product_dtype`, the rest in g's;
    None where the m x m factorisation fails."""
    m = a.shape[0]
    p = a.to(_product_dtype(a, g.dtype)).contiguous()  # as the kernel forms the product, whatever the layout
    inner = (p @ p.T).to(g.dtype) / m + damping * torch.eye(m, dtype=g.dtype, device=g.device)
    factor, info = torch.linalg.cholesky_ex(inner)
    if info != 0:
        return None
    u = a.to(g.dtype)

    def solve(r: torch.Tensor) -> torch.Tensor:
        w = torch.cholesky_solve(u @ r[:, None], factor)
        return ((r[:, None] - u.T @ w / m) / damping)[:, 0]

    return _solve_scaled(solve, a, True, g, damping)


def block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    check_block_solve(blocks, g, damping, low_rank)
    out, offset = [], 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        d = a.shape[1]
        if factored and a.shape[0] < d:
            x = _woodbury(a, g[offset : offset + d], damping)
        else:
            rounding = _product_dtype(a, g.dtype) if factored else g.dtype  # a product carries its dtype's rounding
            h = (a.to(rounding).T @ a.to(rounding)).to(g.dtype) / a.shape[0] if factored else a.to(g.dtype)
            h = h + damping * torch.eye(d, dtype=g.dtype, device=g.device)
            factor, info = torch.linalg.cholesky_ex(h)  # reads the lower triangle
            # A matrix singular to rounding is refused whether or not its factorisation passed.
            refused = info != 0 or _singular(factor, h, rounding)
            solve = partial(_cholesky_solve, factor)
            x = None if refused else _solve_scaled(solve, a, factored, g[offset : offset + d], damping)
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
