"""Which kernels serve the ops on each device."""

from __future__ import annotations

import unlearn
from tests.devices import cuda_only


@cuda_only
def test_cuda_backend_is_compiled():
    assert "cuda: compiled" in unlearn.backend()["codec_select"]
