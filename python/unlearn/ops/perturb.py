"""unlearn::perturb: seeded Gaussian copies of a tensor."""

from __future__ import annotations

import torch

from .._core import check_int64, check_seed
from ._library import declare
from .reference import perturb as twin


def _fake(x: torch.Tensor, copies: int, sigma: float, seed: int = 0) -> torch.Tensor:
    return x.new_empty((copies, *x.shape))


declare("perturb(Tensor x, int copies, float sigma, int seed=0) -> Tensor", twin=twin, fake=_fake)


def perturb(x: torch.Tensor, copies: int, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """`copies` noisy copies x + sigma * e, shape (copies, *x.shape), with e
    standard normal from a counter-based generator: the same numbers for a
    seed on every device and thread count.

    Checked: x non-empty float32/float64 (any strides, expanded views too),
    copies >= 1 with the output (copies * x.numel() values) fitting in the
    device's memory (physical memory on the CPU), sigma finite and >= 0.
    Trusted: the values of x, which are not checked for NaN or inf; those
    propagate to every copy, and a sigma so large that x + sigma * e leaves
    the dtype's range gives +-inf there, as torch arithmetic does."""
    return torch.ops.unlearn.perturb(
        x, check_int64("copies", copies, op="perturb"), sigma, check_seed(seed, op="perturb")
    )
