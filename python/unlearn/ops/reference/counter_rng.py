"""Counter-based standard normal noise, the twin of csrc/common/counter_rng.h."""

from __future__ import annotations

import math

import torch

from .tie_key import _MASK, mix32, seed_state


def counter_normal(seed: int, counters: torch.Tensor) -> torch.Tensor:
    """Standard normal draws (float64), one per int64 counter, by Box-Muller."""
    lo, hi = counters & _MASK, (counters >> 32) & _MASK
    h = mix32(seed_state(seed) ^ mix32(lo ^ mix32((hi + 0x632BE5AB) & _MASK)))
    a, b = mix32(h ^ 0x85EBCA6B), mix32(h ^ 0xC2B2AE35)
    u1 = (a.double() + 1.0) * 2.0**-32
    u2 = b.double() * 2.0**-32
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
