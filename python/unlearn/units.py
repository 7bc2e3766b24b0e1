"""The units L-CODEC selects among: every output channel of every Conv and
Linear layer, as columns of one feature matrix, and the parameter block of
each unit (its weight row or filter, plus its bias entry)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from . import ops
from ._core import eval_mode

UNIT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Layer:
    name: str
    module: nn.Module
    column: int  # first column of this layer's units in the feature matrix
    units: int


class Units:
    """Conv/Linear layers of a model in registration order, with column offsets.

    The column order is fixed by the module tree, not by execution order, so a
    column always maps back to the same (layer, unit).
    """

    def __init__(self, model: nn.Module):
        self.layers: list[Layer] = []
        column = 0
        for name, module in model.named_modules():
            if isinstance(module, UNIT_TYPES):
                units = module.out_features if isinstance(module, nn.Linear) else module.out_channels
                self.layers.append(Layer(name, module, column, units))
                column += units
        if not self.layers:
            raise ValueError("model has no Conv or Linear layer: L-CODEC has no units to select")
        self.columns = column
        self.model = model

    def unit(self, column: int) -> tuple[Layer, int]:
        """The layer and output unit behind a feature column."""
        for layer in self.layers:
            if layer.column <= column < layer.column + layer.units:
                return layer, column - layer.column
        raise IndexError(f"column {column} is outside 0..{self.columns - 1}")

    @contextmanager
    def record(self, features: torch.Tensor):
        """While active, each forward pass writes every unit's mean activation
        (over positions; channels are dim 1 for Conv and the last dim for Linear)
        into `features` (rows = batch) with unlearn.ops.channel_means."""
        handles = []
        for layer in self.layers:

            def hook(module, inputs, output, column=layer.column):
                act = output if not isinstance(module, nn.Linear) else output.movedim(-1, 1)
                ops.channel_means(act.detach().to(features.dtype), features, column)

            handles.append(layer.module.register_forward_hook(hook))
        try:
            yield features
        finally:
            for handle in handles:
                handle.remove()


@dataclass
class Selection:
    """Selected units grouped by layer: the parameter blocks of one Newton step."""

    rows: dict[str, torch.Tensor]  # layer name -> selected output units (int64, sorted)
    units: Units

    @classmethod
    def from_columns(cls, units: Units, columns: list[int]) -> "Selection":
        rows: dict[str, list[int]] = {}
        for column in sorted(set(columns)):
            layer, unit = units.unit(column)
            rows.setdefault(layer.name, []).append(unit)
        return cls({name: torch.tensor(r, dtype=torch.int64) for name, r in rows.items()}, units)

    def parameters(self) -> list[tuple[str, torch.Tensor]]:
        """(parameter name, selected rows) for every weight and bias involved,
        each tensor under its name in `model.named_parameters()`: a tensor
        that selected layers share (tied weights) comes once, with the union
        of their rows."""
        # Read afresh: a parameter replaced since (load_state_dict(assign=True), say) has a new id.
        names = {id(p): name for name, p in self.units.model.named_parameters()}
        out: dict[str, torch.Tensor] = {}
        for layer in self.units.layers:
            if layer.name not in self.rows:
                continue
            prefix = f"{layer.name}." if layer.name else ""
            for pname, p in layer.module.named_parameters(recurse=False):
                name, rows = names.get(id(p), prefix + pname), self.rows[layer.name]
                out[name] = rows if name not in out else torch.cat([out[name], rows]).unique()
        return list(out.items())

    def size(self, model: nn.Module) -> int:
        params = dict(model.named_parameters())
        return sum(int(params[name][rows].numel()) for name, rows in self.parameters())

    def gather(self, tensors: dict[str, torch.Tensor], leading: int = 0) -> torch.Tensor:
        """Flattens the selected rows of each named tensor into one vector per
        leading index (shape (*leading dims, d_S))."""
        parts = []
        for name, rows in self.parameters():
            t = tensors[name]
            block = t.index_select(leading, rows.to(t.device))
            parts.append(block.reshape(*block.shape[:leading], -1))
        return torch.cat(parts, dim=leading)

    def scatter_add(self, model: nn.Module, delta: torch.Tensor) -> None:
        """Adds the flat vector `delta` to the selected rows of the parameters."""
        params = dict(model.named_parameters())
        offset = 0
        with torch.no_grad():
            for name, rows in self.parameters():
                p = params[name]
                rows = rows.to(p.device)
                shape = (len(rows), *p.shape[1:])
                size = int(torch.Size(shape).numel())
                p.index_add_(0, rows, delta[offset : offset + size].view(shape).to(p.dtype))
                offset += size


def inference_bytes(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes one sample (a perturbed copy, say) is estimated to need in a
    forward pass without gradients: its input and, twice over, the outputs of
    the Conv and Linear layers (a margin for intermediates), counted on a
    pass of `sample` alone in eval mode (no statistics updated)."""
    elements = [sample.numel()]
    handles = [
        module.register_forward_hook(lambda m, i, o: elements.append(2 * o.numel()))
        for module in model.modules()
        if isinstance(module, UNIT_TYPES)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model(sample[None])
    finally:
        for h in handles:
            h.remove()
    return sum(elements) * sample.element_size()


def inference_batch(model: nn.Module, sample: torch.Tensor, max_bytes: int, cap: int) -> int:
    """Samples (1 to `cap`) a forward pass without gradients takes at once
    within `max_bytes` (`inference_bytes` each)."""
    return max(1, min(cap, max_bytes // inference_bytes(model, sample)))
