"""Devices a test runs on, in the manner of pyg-lib's withCUDA.

`on_devices` parametrizes a test's `device` argument with "cpu" and "cuda";
`cuda_only` marks a test that has a meaning on CUDA alone. Every CUDA case
carries the `cuda` marker (select them with `pytest -m cuda`) and is skipped,
with its reason, where torch sees no CUDA device.
"""

from __future__ import annotations

import pytest
import torch

CUDA_AVAILABLE = torch.cuda.is_available()
NEEDS_CUDA = (pytest.mark.cuda, pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA device"))

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=NEEDS_CUDA)]

on_devices = pytest.mark.parametrize("device", DEVICES)


def cuda_only(test):
    """Marks a test that runs on CUDA only (it compares CUDA with the CPU, say)."""
    for mark in reversed(NEEDS_CUDA):
        test = mark(test)
    return test
