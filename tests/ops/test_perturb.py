"""torch.ops.unlearn.perturb against its twin and known truths, bad input,
and on CUDA against the CPU kernel."""

from __future__ import annotations

import pytest
import torch

import unlearn
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


def _messages(fn_args):
    """The ValueError texts of the op and the twin on the same arguments."""
    texts = []
    for fn in (perturb, reference.perturb):
        with pytest.raises(ValueError) as error:
            fn(*fn_args)
        texts.append(str(error.value))
    return texts


@pytest.mark.parametrize("copies", [2**44, 2**61, 2**63 - 1])
def test_copies_beyond_memory_are_refused_before_allocating(copies):
    ours, twin = _messages((torch.ones(3), copies, 0.1, 0))
    assert ours == twin and ours.startswith("perturb: copies must be at most ") and ours.endswith(f"got {copies}")
    # An expanded x of 2**62 elements: one copy does not fit (its bytes pass int64).
    x = torch.zeros(1).expand(2**62)
    ours, twin = _messages((x, 1, 0.1, 0))
    assert ours == twin and ours.startswith("perturb: copies must be at most 0 ")


def test_sigma_message_is_the_twins():
    for sigma in (-1.0, -0.1 - 0.2, -1e-5, -1e16, -5e-324, float("nan"), float("-inf")):
        ours, twin = _messages((torch.ones(3), 2, sigma, 0))
        assert ours == twin and "sigma" in ours


@pytest.mark.parametrize("name, value", [("copies", 2**64), ("copies", 2**63), ("seed", 2**64), ("seed", -(2**63) - 1)])
def test_wrapper_refuses_ints_beyond_int64(name, value):
    kwargs = {"copies": 2, "seed": 0, name: value}
    with pytest.raises(ValueError, match=rf"perturb: {name} must fit in int64"):
        unlearn.ops.perturb(torch.ones(3), kwargs["copies"], 0.1, seed=kwargs["seed"])


def test_seed_at_the_int64_edges_matches_twin():
    x = torch.randn(4, 3, dtype=torch.float64)
    for seed in (-(2**63), 2**63 - 1):
        torch.testing.assert_close(perturb(x, 3, 0.5, seed), reference.perturb(x, 3, 0.5, seed), rtol=0, atol=1e-12)


def test_layouts_and_trusted_values():
    """Non-contiguous and expanded x work; x's values are trusted (documented):
    NaN and inf propagate, and a sigma past the dtype's range gives +-inf."""
    base = torch.randn(4, 6, dtype=torch.float64)
    for x in (base.t(), base[:, ::2], torch.randn(1, 6, dtype=torch.float64).expand(4, 6)):
        assert torch.equal(perturb(x, 3, 0.1, 5), perturb(x.contiguous(), 3, 0.1, 5))
    x = torch.tensor([0.0, float("nan"), float("inf"), 1.0])
    for sigma in (0.1, 1e38):
        ours = perturb(x, 5, sigma, 2)
        torch.testing.assert_close(ours, reference.perturb(x, 5, sigma, 2), equal_nan=True)
        assert ours[:, 1].isnan().all() and ours[:, 2].isinf().all()
    assert perturb(torch.zeros(4), 5, 1e39, 2).isinf().any()  # float32: sigma * e beyond 3.4e38


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
