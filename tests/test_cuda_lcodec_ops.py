"""perturb, channel_means and block_solve on CUDA against the CPU kernels."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_perturb_same_noise_on_cpu_and_cuda(dtype, tol):
    x = torch.randn(5, 3, 8, 8, dtype=dtype)
    cpu = torch.ops.unlearn.perturb(x, 37, 0.1, 11)
    gpu = torch.ops.unlearn.perturb(x.cuda(), 37, 0.1, 11)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=tol)


@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 7, 7), (2, 300, 1, 1), (2, 3, 1000)])
def test_channel_means_cuda_matches_cpu(shape):
    act = torch.randn(*shape, dtype=torch.float64)
    cpu, gpu = torch.zeros(shape[0], shape[1] + 4, dtype=torch.float64), torch.zeros(
        shape[0], shape[1] + 4, dtype=torch.float64, device="cuda"
    )
    torch.ops.unlearn.channel_means(act, cpu, 3)
    torch.ops.unlearn.channel_means(act.cuda(), gpu[:, :], 3)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)


def test_block_solve_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(16, 64, generator=g, dtype=torch.float64), torch.eye(8, dtype=torch.float64) * 3]
    rhs = torch.randn(72, generator=g, dtype=torch.float64)
    cpu = torch.ops.unlearn.block_solve(blocks, rhs, 0.1, [True, False])
    gpu = torch.ops.unlearn.block_solve([b.cuda() for b in blocks], rhs.cuda(), 0.1, [True, False])
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-9)


def test_opcheck_on_cuda():
    x = torch.randn(3, 4, device="cuda", dtype=torch.float64)
    torch.library.opcheck(torch.ops.unlearn.perturb, (x, 2, 0.1, 0))
    act = torch.randn(3, 4, 2, 2, device="cuda")
    torch.library.opcheck(torch.ops.unlearn.channel_means, (act, torch.zeros(3, 6, device="cuda"), 1))
    blocks = [torch.randn(4, 6, device="cuda", dtype=torch.float64)]
    torch.library.opcheck(torch.ops.unlearn.block_solve, (blocks, torch.randn(6, device="cuda", dtype=torch.float64), 0.1, [True]))
