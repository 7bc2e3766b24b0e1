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
        parameters = inspect.signature(wrapper).parameters
        assert list(parameters) == [a.name for a in schema.arguments], name
        for argument in schema.arguments:
            if argument.has_default_value():
                assert parameters[argument.name].default == argument.default_value, (name, argument.name)


def test_import_falls_back_to_twins_with_one_warning():
    script = textwrap.dedent(
        """
        import sys, warnings
        import torch
        sys.modules["unlearn._C"] = None  # as if the compiled module were deleted
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import unlearn
        ours = [w for w in caught if "compiled kernels could not be loaded" in str(w.message)]
        assert len(ours) == 1, [str(w.message) for w in caught]
        assert not unlearn.compiled()
        assert all(v == "cpu: reference, cuda: reference" for v in unlearn.backend().values())
        # The twins serve every device, not only the CPU and CUDA.
        for name in unlearn.backend():
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"unlearn::{name}", "CompositeExplicitAutograd")
        x = torch.randn(6, 2, dtype=torch.float64)
        assert unlearn.ops.perturb(x, 2, 0.1).shape == (2, 6, 2)
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
