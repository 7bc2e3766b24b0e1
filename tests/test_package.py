"""Packaging: compiled schemas, the backend report, and the fallback to twins."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import torch

import unlearn


def test_compiled_kernels_are_loaded():
    assert unlearn.compiled()
    assert all(report.startswith("cpu: compiled") for report in unlearn.backend().values())


def test_every_op_has_a_typed_wrapper_with_the_schema_arguments():
    ops = unlearn.backend()
    assert set(ops) == {
        "block_solve",
        "channel_means",
        "codec",
        "codec_select",
        "codec_step",
        "nearest_neighbor",
        "perturb",
    }
    for name in ops:
        wrapper = getattr(unlearn.ops, name)
        assert wrapper.__doc__, name
        schema = getattr(torch.ops.unlearn, name).default._schema
        assert list(inspect.signature(wrapper).parameters) == [a.name for a in schema.arguments], name


def test_import_falls_back_to_twins_with_one_warning():
    script = textwrap.dedent(
        """
        import sys, warnings
        sys.modules["unlearn._C"] = None  # as if the compiled module were deleted
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import unlearn
        ours = [w for w in caught if "compiled kernels could not be loaded" in str(w.message)]
        assert len(ours) == 1, [str(w.message) for w in caught]
        assert not unlearn.compiled()
        assert all("reference" in v for v in unlearn.backend().values())
        import torch
        g = torch.Generator().manual_seed(0)
        f = torch.randn(200, 6, generator=g, dtype=torch.float64)
        y = f[:, 2] + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
        print(unlearn.foci(y, f, seed=1).selected)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 6, generator=g, dtype=torch.float64)
    y = f[:, 2] + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    assert out.stdout.strip() == str(unlearn.foci(y, f, seed=1).selected)
