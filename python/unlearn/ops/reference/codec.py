"""Twin of unlearn::codec: the CODEC coefficient of Azadkia and Chatterjee."""

from __future__ import annotations

import torch

from ..ranks import exact_sum, max_ranks
from .checks import MAX_RANK_ROWS, check_points, check_response, check_same_rows, fail
from .nearest_neighbor import neighbors


def check_codec(y: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None) -> None:
    check_points("codec", "z", z, MAX_RANK_ROWS)
    if x is not None:
        check_points("codec", "x", x, MAX_RANK_ROWS)
        check_same_rows("codec", "x", x, "z", z)
    check_response("codec", "y", y, z.shape[0])
    if y.device != z.device:
        fail("codec", f"y is on {y.device} but z is on {z.device}")


def codec_from_neighbors(
    up: torch.Tensor, down: torch.Tensor, m: torch.Tensor, nx: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """T from ranks and neighbour indices. Every term is an int64 (n^2 fits:
    MAX_RANK_ROWS); the numerator and denominator, which reach n^3, are
    summed exactly, each rounded once to float64, and divided."""
    r_m = torch.minimum(up, up[m])
    if nx is not None:
        r_n = torch.minimum(up, up[nx])
        num, den = exact_sum(r_m - r_n), exact_sum(up - r_n)
        ratio = 1.0 if den == 0 else float(num) / float(den)
    else:
        n = up.shape[0]
        num, den = exact_sum(n * r_m - down * down), exact_sum(down * (n - down))
        ratio = float(num) / float(den)
    return torch.tensor(ratio, dtype=torch.float64, device=up.device).to(dtype)


def codec(y: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    check_codec(y, z, x)
    up, down = max_ranks(y)
    joint = z if x is None else torch.cat([x, z], dim=1)
    m = neighbors(joint, seed)
    nx = None if x is None else neighbors(x, seed)
    return codec_from_neighbors(up, down, m, nx, z.dtype)
