"""Shared fixtures: fresh random inputs whose seed is reported on failure."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

import unlearn  # noqa: F401  (registers torch.ops.unlearn)

# Hypothesis profiles for the property tests (tests/ops/test_properties.py);
# pick one with `pytest --hypothesis-profile=thorough`. "default" keeps the
# whole property suite to some 30 s on two cores; "ci" is the same without a
# saved example database (Hypothesis has a "ci" profile of its own, which is
# derandomized: this one replaces it); "thorough" runs many more examples and
# shrinks the failures of the known faults too. Never derandomized: a failure
# prints Hypothesis's falsifying example and its reproduction blob
# (@reproduce_failure). No deadline: the first call of an op compiles and
# warms up.
_PROPERTY_SETTINGS = dict(
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "default",
    max_examples=30,
    database=DirectoryBasedExampleDatabase(os.path.join(tempfile.gettempdir(), "torch-unlearn-hypothesis")),
    **_PROPERTY_SETTINGS,
)
settings.register_profile("ci", settings.get_profile("default"), database=None)
settings.register_profile("thorough", settings.get_profile("default"), max_examples=600)
settings.load_profile("default")


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
