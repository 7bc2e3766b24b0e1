"""The torch.ops.unlearn namespace: loads the compiled kernels and declares
every op from one place (`declare`).

The schemas are written only in Python, in each op's module of this package.
The compiled library (`unlearn._C`) registers kernels for some dispatch keys
(CPU, CUDA, or CompositeExplicitAutograd for one written once with ATen ops);
`declare` defines the schema, registers the op's pure-PyTorch twin for every
device without a compiled kernel, and the fake (meta) implementation, so every
op runs on every device and traces under torch.compile(fullgraph=True).
`import unlearn` never fails because the compiled library is missing or was
built for another torch: it warns once and every op runs on its twin.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Callable

import torch

try:
    from .. import _C  # registers the compiled kernels

    _COMPILED_ERROR: str | None = None
except (ImportError, OSError) as error:  # missing, or built against another torch
    _C = None
    missing = importlib.util.find_spec("unlearn._C") is None
    _COMPILED_ERROR = "the module unlearn._C is not installed" if missing else str(error)
    warnings.warn(
        "torch-unlearn: the compiled kernels could not be loaded "
        f"({_COMPILED_ERROR}); every op runs on its pure-PyTorch reference twin.",
        RuntimeWarning,
        stacklevel=2,
    )

_LIBRARY = torch.library.Library("unlearn", "DEF")
# Dispatch keys the compiled library may fill, reported by backend(); a
# kernel registered for CompositeExplicitAutograd serves every device.
_DEVICES = {"cpu": "CPU", "cuda": "CUDA"}
_ANY_DEVICE = "CompositeExplicitAutograd"
_BACKENDS: dict[str, dict[str, str]] = {}


def _has_compiled_kernel(name: str, key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"unlearn::{name}", key)


def declare(schema: str, *, twin: Callable, fake: Callable) -> str:
    """Defines the op `schema` in torch.ops.unlearn, with `twin` serving the
    devices that have no compiled kernel and `fake` computing output shapes.
    Returns the op's name."""
    name = schema.split("(", 1)[0]
    _LIBRARY.define(schema)
    everywhere = _has_compiled_kernel(name, _ANY_DEVICE)
    compiled = {device: everywhere or _has_compiled_kernel(name, key) for device, key in _DEVICES.items()}
    if not everywhere:
        # A device-specific compiled kernel takes precedence over this one.
        _LIBRARY.impl(name, twin, _ANY_DEVICE)
    _BACKENDS[name] = {device: "compiled" if done else "reference" for device, done in compiled.items()}
    torch.library.register_fake(f"unlearn::{name}", fake, lib=_LIBRARY)
    return name


def compiled() -> bool:
    """Whether the compiled kernels are loaded."""
    return _C is not None


def backend() -> dict[str, str]:
    """Which implementation each op runs on, per device type.

    Example: {"codec": "cpu: compiled, cuda: reference", ...}.
    """
    return {
        name: ", ".join(f"{device}: {kind}" for device, kind in devices.items()) for name, devices in _BACKENDS.items()
    }
