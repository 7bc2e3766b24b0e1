"""torch.ops.unlearn.channel_means against its twin and the mean over each
channel, bad input, and on CUDA against the CPU kernel."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import unlearn
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


# The column checks at the edges of int64: `column + C <= columns` once passed
# for column = 2**63 - 1 by overflow, and the kernel wrote out of bounds (an
# abort), so they run in a child interpreter.
COLUMN_EDGES = textwrap.dedent(
    """
    import torch, unlearn
    from unlearn.ops import reference
    for column in (2**63 - 1, 2**63 - 2, 2**62, -(2**63), -1, 3):
        for fn in (torch.ops.unlearn.channel_means, reference.channel_means):
            try:
                fn(torch.ones(2, 1), torch.zeros(2, 3), column)
            except ValueError as error:
                assert "column" in str(error) and "exceeds" in str(error), error
            else:
                raise AssertionError(f"column {column} was accepted")
    for fn in (torch.ops.unlearn.channel_means, reference.channel_means):  # more channels than columns
        try:
            fn(torch.ones(2, 4), torch.zeros(2, 3), 0)
        except ValueError as error:
            assert "exceeds" in str(error), error
        else:
            raise AssertionError("4 channels into 3 columns were accepted")
    print("refused")
    """
)


def test_column_is_checked_without_overflow():
    run = subprocess.run([sys.executable, "-c", COLUMN_EDGES], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "refused" in run.stdout, run.stderr[-2000:]
    # The last columns are still reachable.
    out = torch.zeros(2, 3)
    channel_means(torch.ones(2, 1), out, 2)
    assert out.tolist() == [[0, 0, 1], [0, 0, 1]]


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_refuses_an_expanded_out(impl):
    c = channel_means if impl == "op" else reference.channel_means
    out = torch.zeros(1, 5).expand(3, 5)  # the three rows share their memory
    with pytest.raises(ValueError, match=r"channel_means: out is an expanded view"):
        c(torch.randn(3, 2, 4), out, 1)


def test_strided_out_and_act_that_is_a_view_of_out(gen):
    act = torch.randn(6, 4, 3, generator=gen, dtype=torch.float64)
    big = torch.zeros(6, 20, dtype=torch.float64)
    out, twin = big[:, 1::2], torch.zeros(6, 10, dtype=torch.float64)  # strided columns
    channel_means(act[:, :, ::2], out, 3)
    reference.channel_means(act[:, :, ::2], twin, 3)
    assert torch.equal(out, twin) and (big[:, ::2] == 0).all()
    # act read from the columns the op writes: as if act were copied first.
    out = torch.arange(8, dtype=torch.float64)[None].clone()
    twin = out.clone()
    channel_means(out[:, :4, None], out, 1)
    reference.channel_means(twin[:, :4, None], twin, 1)
    assert out.tolist() == twin.tolist() == [[0, 0, 1, 2, 3, 5, 6, 7]]


def test_trusts_the_values_of_act():
    """Documented: NaN and inf are not refused; they propagate into their means."""
    act = torch.ones(2, 3, 4, dtype=torch.float64)
    act[0, 1, 2], act[1, 2, 0] = float("nan"), float("inf")
    out, twin = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    channel_means(act, out, 0)
    reference.channel_means(act, twin, 0)
    torch.testing.assert_close(out, twin, equal_nan=True)
    assert out[0, 1].isnan() and out[1, 2] == float("inf") and out[0, 0] == 1


@pytest.mark.parametrize("column", [2**63, -(2**63) - 1, 2**64])
def test_wrapper_refuses_ints_beyond_int64(column):
    with pytest.raises(ValueError, match=r"channel_means: column must fit in int64"):
        unlearn.ops.channel_means(torch.ones(2, 1), torch.zeros(2, 3), column)


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
