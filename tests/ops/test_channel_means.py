"""torch.ops.unlearn.channel_means against its twin and the mean over each
channel, bad input, and on CUDA against the CPU kernel."""

from __future__ import annotations

import pytest
import torch

from tests.devices import cuda_only, on_devices
from unlearn.ops import reference

channel_means = torch.ops.unlearn.channel_means


@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 9), (4, 6, 5, 5), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_writes_its_columns_only(gen, shape, dtype):
    act = torch.randn(*shape, generator=gen, dtype=dtype)
    out = torch.full((shape[0], shape[1] + 5), 7.0, dtype=dtype)
    twin = out.clone()
    channel_means(act, out, 2)
    reference.channel_means(act, twin, 2)
    torch.testing.assert_close(out, twin)
    expected = act.reshape(shape[0], shape[1], -1).mean(dim=2)
    torch.testing.assert_close(out[:, 2 : 2 + shape[1]], expected)
    assert (out[:, :2] == 7).all() and (out[:, 2 + shape[1] :] == 7).all()


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_bad_input(impl):
    c = channel_means if impl == "op" else reference.channel_means
    with pytest.raises(ValueError, match="exceeds"):
        c(torch.randn(2, 4, 3), torch.zeros(2, 5), 2)
    with pytest.raises(ValueError, match=r"\bout\b"):
        c(torch.randn(2, 4, 3), torch.zeros(3, 8), 0)


@on_devices
def test_opcheck(device):
    act = torch.randn(3, 4, 2, 2, device=device)
    torch.library.opcheck(channel_means, (act, torch.zeros(3, 6, device=device), 1))


@cuda_only
@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 7, 7), (2, 300, 1, 1), (2, 3, 1000)])
def test_cuda_matches_cpu(shape):
    act = torch.randn(*shape, dtype=torch.float64)
    cpu, gpu = (
        torch.zeros(shape[0], shape[1] + 4, dtype=torch.float64),
        torch.zeros(shape[0], shape[1] + 4, dtype=torch.float64, device="cuda"),
    )
    channel_means(act, cpu, 3)
    channel_means(act.cuda(), gpu[:, :], 3)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)
