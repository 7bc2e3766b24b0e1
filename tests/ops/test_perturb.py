"""torch.ops.unlearn.perturb against its twin and known truths, bad input,
and on CUDA against the CPU kernel."""

from __future__ import annotations

import pytest
import torch

from tests.devices import cuda_only, on_devices
from tests.ops.helpers import draw_seed
from unlearn.ops import reference

perturb = torch.ops.unlearn.perturb


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_twin_and_is_seeded(gen, dtype):
    x = torch.randn(3, 1, 8, 8, generator=gen, dtype=dtype)
    seed = draw_seed(gen)
    ours = perturb(x, 50, 0.1, seed)
    assert ours.shape == (50, 3, 1, 8, 8) and ours.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, reference.perturb(x, 50, 0.1, seed), rtol=0, atol=tol)
    assert torch.equal(ours, perturb(x, 50, 0.1, seed))
    assert not torch.equal(ours, perturb(x, 50, 0.1, seed + 1))


def test_noise_is_standard_normal():
    x = torch.zeros(1000, dtype=torch.float64)
    e = perturb(x, 200, 1.0, 3).flatten()  # 200,000 draws
    assert abs(float(e.mean())) < 0.01 and abs(float(e.std()) - 1) < 0.01
    assert abs(float((e.abs() < 1.96).double().mean()) - 0.95) < 0.005
    assert torch.equal(perturb(x, 3, 0.0, 3), x.expand(3, 1000))


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_bad_input(impl):
    p = perturb if impl == "op" else reference.perturb
    with pytest.raises(ValueError, match="copies"):
        p(torch.randn(3), 0, 0.1, 0)
    with pytest.raises(ValueError, match="sigma"):
        p(torch.randn(3), 2, -1.0, 0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        p(torch.randint(0, 3, (3,)), 2, 0.1, 0)


@on_devices
def test_opcheck(device):
    x = torch.randn(2, 3, dtype=torch.float64, device=device)
    torch.library.opcheck(perturb, (x, 4, 0.1, 1))
    x = torch.randn(3, 4, dtype=torch.float64, device=device)
    torch.library.opcheck(perturb, (x, 2, 0.1, 0))


@cuda_only
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_same_noise_on_cpu_and_cuda(dtype, tol):
    x = torch.randn(5, 3, 8, 8, dtype=dtype)
    cpu = perturb(x, 37, 0.1, 11)
    gpu = perturb(x.cuda(), 37, 0.1, 11)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=tol)
