"""Twin of unlearn::block_solve: one dense solve per block, no Woodbury; a float32
block's product is formed in float32, the solve in g's dtype."""

from __future__ import annotations

import torch

from .._checks import check_block_solve


def block_solve(blocks: list[torch.Tensor], g: torch.Tensor, damping: float, low_rank: list[bool]) -> torch.Tensor:
    check_block_solve(blocks, g, damping, low_rank)
    out, offset = [], 0
    for b, (a, factored) in enumerate(zip(blocks, low_rank)):
        d = a.shape[1]
        h = (a.T @ a / a.shape[0] if factored else a).to(g.dtype)
        h = h + damping * torch.eye(d, dtype=g.dtype, device=g.device)
        if torch.linalg.cholesky_ex(h).info != 0:
            kind = "low-rank" if factored else "dense"
            raise ValueError(f"block_solve: block {b} ({kind}, {d} x {d}) is not positive definite after damping {damping}")
        out.append(torch.linalg.solve(h, g[offset : offset + d]))
        offset += d
    return torch.cat(out)
