"""Loads the compiled kernels of torch.ops.unlearn, or registers the twins.

`import unlearn` never fails because the compiled library is missing or built
for another torch: it warns once and every op runs on its pure-PyTorch twin.
Fake (meta) implementations are registered either way, so the ops trace under
torch.compile(fullgraph=True).
"""

from __future__ import annotations

import importlib.util
import warnings

import torch

from . import reference
from ._schemas import SCHEMAS

try:
    from . import _C  # noqa: F401  (registers the compiled ops)

    _COMPILED_ERROR: str | None = None
except (ImportError, OSError) as error:  # missing, or built against another torch
    _C = None
    missing = importlib.util.find_spec(f"{__package__}._C") is None
    _COMPILED_ERROR = "the module unlearn._C is not installed" if missing else str(error)

_TWINS = {
    "nearest_neighbor": reference.nearest_neighbor,
    "codec": reference.codec,
    "codec_select": reference.codec_select,
    "codec_step": reference.codec_step,
    "perturb": reference.perturb,
    "channel_means": reference.channel_means,
    "block_solve": reference.block_solve,
}
# Written once with ATen ops, registered for every device by the compiled library.
_DEVICE_GENERIC = {"block_solve"}
# Compiled for the CPU only: CUDA tensors run on the twin in every build.
_CPU_ONLY = {"codec_step"}

if _C is None:
    warnings.warn(
        "torch-unlearn: the compiled kernels could not be loaded "
        f"({_COMPILED_ERROR}); every op runs on its pure-PyTorch reference twin.",
        RuntimeWarning,
        stacklevel=2,
    )
    _LIBRARY = torch.library.Library("unlearn", "DEF")
    for _name, _schema in SCHEMAS.items():
        _LIBRARY.define(_schema)
        _LIBRARY.impl(_name, _TWINS[_name], "CompositeExplicitAutograd")
else:
    # A CPU-only build still serves CUDA tensors, through the twins.
    _LIBRARY = torch.library.Library("unlearn", "IMPL")
    for _name in _CPU_ONLY if _C.with_cuda else SCHEMAS.keys() - _DEVICE_GENERIC:
        _LIBRARY.impl(_name, _TWINS[_name], "CUDA")


@torch.library.register_fake("unlearn::nearest_neighbor")
def _(x, seed=0):
    return x.new_empty((x.shape[0],), dtype=torch.int64)


@torch.library.register_fake("unlearn::codec")
def _(y, z, x=None, seed=0):
    return z.new_empty(())


@torch.library.register_fake("unlearn::codec_select")
def _(y, features, max_select, stop_early=True, seed=0, max_cache_bytes=1 << 30):
    return (
        features.new_empty((max_select,), dtype=torch.int64),
        features.new_empty((max_select,)),
    )


@torch.library.register_fake("unlearn::codec_step")
def _(y, candidates, selected, row_begin, row_end, seed=0, cache=None):
    return candidates.new_empty((candidates.shape[1],), dtype=torch.int64), candidates.new_empty((), dtype=torch.int64)


@torch.library.register_fake("unlearn::perturb")
def _(x, copies, sigma, seed=0):
    return x.new_empty((copies, *x.shape))


@torch.library.register_fake("unlearn::channel_means")
def _(act, out, column):
    return None


@torch.library.register_fake("unlearn::block_solve")
def _(blocks, g, damping, low_rank):
    return torch.empty_like(g)


def compiled() -> bool:
    """Whether the compiled kernels are loaded."""
    return _C is not None


def backend() -> dict[str, str]:
    """Which implementation each op runs on, per device type.

    Example: {"codec": "cpu: compiled, cuda: reference", ...}.
    """
    if _C is None:
        return {name: "cpu: reference, cuda: reference" for name in SCHEMAS}
    cuda = "compiled" if _C.with_cuda else "reference"
    return {
        name: "cpu: compiled, cuda: compiled"
        if name in _DEVICE_GENERIC
        else f"cpu: compiled, cuda: {'reference' if name in _CPU_ONLY else cuda}"
        for name in SCHEMAS
    }
