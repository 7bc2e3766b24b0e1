"""Bad input raises ValueError naming the argument, in the wrappers, the
compiled ops and the twins alike; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import unlearn
from unlearn.ops import reference

f64 = torch.float64
Y = torch.randn(20, dtype=f64)
Z = torch.randn(20, 2, dtype=f64)


def _nan(t):
    t = t.clone()
    t.view(-1)[3] = float("nan")
    return t


def _inf(t):
    t = t.clone()
    t.view(-1)[0] = float("inf")
    return t


# (y, z, x, argument named in the message)
CODEC_CASES = {
    "mismatched lengths": (Y[:15], Z, None, "y"),
    "mismatched x rows": (Y, Z, torch.randn(19, 1, dtype=f64), "x"),
    "one row": (Y[:1], Z[:1], None, "z"),
    "nan in z": (Y, _nan(Z), None, "z"),
    "inf in y": (_inf(Y), Z, None, "y"),
    "nan in x": (Y, Z, _nan(torch.randn(20, 1, dtype=f64)), "x"),
    "constant y": (torch.ones(20, dtype=f64), Z, None, "y"),
    "integer z": (Y, torch.randint(0, 3, (20, 2)), None, "z"),
    "3-d z": (Y, torch.randn(20, 2, 1, dtype=f64), None, "z"),
    "2-d y": (Y[:, None].expand(20, 2), Z, None, "y"),
    "x dtype differs": (Y, Z, torch.randn(20, 1, dtype=torch.float32), "x"),
}


@pytest.mark.parametrize("case", CODEC_CASES)
@pytest.mark.parametrize("impl", ["op", "twin"])
def test_codec_op_errors(case, impl):
    y, z, x, name = CODEC_CASES[case]
    fn = torch.ops.unlearn.codec if impl == "op" else reference.codec
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(y, z, x, 0)


@pytest.mark.parametrize("case", [c for c in CODEC_CASES if c != "x dtype differs"])
def test_codec_wrapper_errors(case):
    y, z, x, name = CODEC_CASES[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        unlearn.codec(y, z, x)


F = torch.randn(20, 4, dtype=f64)
SELECT_CASES = {
    "mismatched lengths": (Y[:10], F, 2, "y"),
    "one row": (Y[:1], F[:1], 1, "features"),
    "nan in features": (Y, _nan(F), 2, "features"),
    "nan in y": (_nan(Y), F, 2, "y"),
    "constant y": (torch.zeros(20, dtype=f64), F, 2, "y"),
    "integer features": (Y, torch.randint(0, 5, (20, 4)), 2, "features"),
    "1-d features in op": (Y, F[:, 0], 1, "features"),
    "max_select zero": (Y, F, 0, "max_select"),
    "max_select above p": (Y, F, 5, "max_select"),
}


@pytest.mark.parametrize("case", SELECT_CASES)
@pytest.mark.parametrize("impl", ["op", "twin"])
def test_codec_select_op_errors(case, impl):
    y, f, k, name = SELECT_CASES[case]
    fn = torch.ops.unlearn.codec_select if impl == "op" else reference.codec_select
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        fn(y, f, k, True, 0, 1 << 30)


@pytest.mark.parametrize("case", [c for c in SELECT_CASES if c != "1-d features in op"])
def test_foci_wrapper_errors(case):
    y, f, k, name = SELECT_CASES[case]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        unlearn.foci(y, f, max_select=k)


def test_foci_rejects_non_integer_max_select_and_other_types():
    with pytest.raises(TypeError, match="max_select"):
        unlearn.foci(Y, F, max_select=2.5)
    with pytest.raises(TypeError, match="features"):
        unlearn.foci(Y, F.tolist())
    with pytest.raises(ValueError, match="features"):
        unlearn.foci(Y.numpy(), np.arange(80).reshape(20, 4))


@pytest.mark.parametrize("impl", ["op", "twin"])
def test_nearest_neighbor_errors(impl):
    fn = torch.ops.unlearn.nearest_neighbor if impl == "op" else reference.nearest_neighbor
    for bad in (torch.randn(1, 3), torch.randn(5), torch.randint(0, 3, (5, 2)), _nan(torch.randn(5, 2)), torch.randn(5, 0)):
        with pytest.raises(ValueError, match=r"\bx\b"):
            fn(bad, 0)
