"""Twin of unlearn::codec: the CODEC coefficient of Azadkia and Chatterjee."""

from __future__ import annotations

import torch

from ..ranks import max_ranks
from .checks import check_points, check_response, check_same_rows, fail
from .nearest_neighbor import neighbors


def check_codec(y: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None) -> None:
    check_points("codec", "z", z)
    if x is not None:
        check_points("codec", "x", x)
        check_same_rows("codec", "x", x, "z", z)
    check_response("codec", "y", y, z.shape[0])
    if y.device != z.device:
        fail("codec", f"y is on {y.device} but z is on {z.device}")


def codec_from_neighbors(
    up: torch.Tensor, down: torch.Tensor, m: torch.Tensor, nx: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """T from ranks and neighbour indices; exact int64 sums, float64 ratio."""
    r_m = torch.minimum(up, up[m])
    if nx is not None:
        r_n = torch.minimum(up, up[nx])
        num, den = (r_m - r_n).sum(), (up - r_n).sum()
        ratio = num.double() / den.double()
        return torch.where(den == 0, torch.ones_like(ratio), ratio).to(dtype)
    n = up.shape[0]
    num = (n * r_m - down * down).sum()
    den = (down * (n - down)).sum()
    return (num.double() / den.double()).to(dtype)


def codec(y: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    check_codec(y, z, x)
    up, down = max_ranks(y)
    joint = z if x is None else torch.cat([x, z], dim=1)
    m = neighbors(joint, seed)
    nx = None if x is None else neighbors(x, seed)
    return codec_from_neighbors(up, down, m, nx, z.dtype)
