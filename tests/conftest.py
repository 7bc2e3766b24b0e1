"""Shared fixtures: fresh random inputs whose seed is reported on failure."""

from __future__ import annotations

import os

import pytest
import torch

import unlearn  # noqa: F401  (registers torch.ops.unlearn)


@pytest.fixture
def gen(request) -> torch.Generator:
    """A generator with a fresh seed per test run; set UNLEARN_TEST_SEED to replay one."""
    seed = int(os.environ.get("UNLEARN_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    request.node.user_properties.append(("seed", seed))
    g = torch.Generator().manual_seed(seed)
    return g


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in item.user_properties:
            if name == "seed":
                report.sections.append(("random seed", f"replay with UNLEARN_TEST_SEED={value}"))
