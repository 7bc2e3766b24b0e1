"""Twin of unlearn::perturb: `copies` noisy copies x + sigma * e."""

from __future__ import annotations

import math

import torch

from .checks import FLOATS, device_memory, fail
from .counter_rng import counter_normal


def check_perturb(x: torch.Tensor, copies: int, sigma: float) -> None:
    if x.dim() < 1 or x.numel() == 0:
        fail("perturb", f"x must be a non-empty tensor, got shape {tuple(x.shape)}")
    if x.dtype not in FLOATS:
        fail("perturb", f"x must be float32 or float64, got {x.dtype}")
    if copies < 1:
        fail("perturb", f"copies must be >= 1, got {copies}")
    # copies * numel * element size must fit in the device's memory.
    memory, numel, size = device_memory(x.device), x.numel(), x.element_size()
    max_copies = memory // size // numel
    if copies > max_copies:
        fail(
            "perturb",
            f"copies must be at most {max_copies} (copies of x, {numel} values of {size} bytes each, "
            f"that fit in {memory} bytes of memory), got {copies}",
        )
    if not (math.isfinite(sigma) and sigma >= 0):
        fail("perturb", f"sigma must be finite and >= 0, got {float(sigma)}")


def perturb(x: torch.Tensor, copies: int, sigma: float, seed: int = 0) -> torch.Tensor:
    check_perturb(x, copies, sigma)
    counters = torch.arange(copies * x.numel(), device=x.device).view(copies, *x.shape)
    return x + (sigma * counter_normal(seed, counters)).to(x.dtype)
