"""Per-sample gradients of selected parameter blocks from one forward and one
batched backward pass, where they would otherwise take a vmap of the whole
backward over the samples. Forward hooks on the selected layers keep each
layer's input and add a zero shift to its output; autograd gives the
gradients w.r.t. the shifts (those w.r.t. the outputs), and these times the
layer's inputs (a Linear layer's input, a convolution's unfolded patches)
give each sample's gradient w.r.t. the layer's weights and bias. It applies
to Linear, Conv1d and Conv2d layers (zero padding) called once a forward."""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .units import Selection

TAPPED = (nn.Linear, nn.Conv1d, nn.Conv2d)


class Taps:
    """Forward hooks on the selected layers of `model`, while used as a context
    manager. A `forward` keeps each layer's input and its output or, to
    differentiate, a zero shift added to the output."""

    def __init__(self, model: nn.Module, selection: Selection):
        modules = dict(model.named_modules())
        self.model = model
        self.layers = [(name, modules[name], rows) for name, rows in selection.rows.items()]
        self.seen: dict[str, list[torch.Tensor]] = {name: [] for name, _, _ in self.layers}
        self.differentiate = False
        self._handles: list = []

    def __enter__(self) -> "Taps":
        self._handles = [m.register_forward_hook(partial(self._hook, name=name)) for name, m, _ in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def _hook(self, module, args, output, name):
        self.seen[name].append(args[0].detach())
        if not self.differentiate:
            self.seen[name].append(output)
            return None
        shift = torch.zeros_like(output, requires_grad=True)
        self.seen[name].append(shift)
        return output + shift

    def forward(self, x: torch.Tensor, differentiate: bool) -> Optional[torch.Tensor]:
        """The logits of `x`, each layer's input and output (or output shift)
        kept; None where a layer was not called exactly once."""
        for found in self.seen.values():
            found.clear()
        self.differentiate = differentiate
        with torch.set_grad_enabled(differentiate):
            logits = self.model(x)
        if any(len(found) != 2 for found in self.seen.values()):
            return None
        return logits

    def inputs(self, name: str) -> torch.Tensor:
        return self.seen[name][0]

    def output(self, name: str) -> torch.Tensor:
        """The layer's output (or its shift, after a differentiating forward)."""
        return self.seen[name][1]

    def output_gradients(self, logits: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """For each layer, the gradients w.r.t. its output of the R weighted
        sums weights[r, b] . logits[b] (weights: R x batch x C), as
        (R, batch, *output shape)."""
        return torch.autograd.grad(
            logits, [self.output(name) for name, _, _ in self.layers], grad_outputs=weights, is_grads_batched=True
        )


def unfolded(module: nn.Module, inputs: torch.Tensor) -> Optional[torch.Tensor]:
    """(batch, K, L): per sample, the K inputs that each output unit's weights
    multiply at each of its L output positions (a Linear layer's input over
    its leading positions, a convolution's patches); None for a layer or an
    input this cannot take."""
    if type(module) is nn.Linear:
        return inputs.reshape(len(inputs), -1, inputs.shape[-1]).transpose(1, 2)
    if type(module) not in (nn.Conv1d, nn.Conv2d) or module.padding_mode != "zeros" or isinstance(module.padding, str):
        return None
    if inputs.dim() != module.weight.dim():  # an unbatched call
        return None
    if type(module) is nn.Conv1d:  # as a Conv2d over a height of 1
        return F.unfold(
            inputs[:, :, None],
            (1, *module.kernel_size),
            dilation=(1, *module.dilation),
            padding=(0, *module.padding),
            stride=(1, *module.stride),
        )
    return F.unfold(inputs, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride)


def _layer_rows(module: nn.Module, patches: torch.Tensor, grads: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(batch, R, d_l): the selected rows' weight entries, then their bias
    entries (Selection.gather's order), from the patches (batch, K, L) and
    the output gradients (R, batch, *output)."""
    batch, weighted = patches.shape[0], grads.shape[0]
    if type(module) is nn.Linear:  # (R, batch, ..., out) -> (batch, R, out, L)
        g = grads.movedim(0, 1).reshape(batch, weighted, -1, grads.shape[-1]).transpose(2, 3)
    else:  # (R, batch, out, *positions) -> (batch, R, out, L)
        g = grads.movedim(0, 1).flatten(3)
    g = g[:, :, rows.to(g.device)]  # (batch, R, S, L)
    groups = getattr(module, "groups", 1)
    if groups == 1:
        weight = torch.einsum("brsl,bkl->brsk", g, patches)
    else:  # each unit multiplies its own group's channels
        per_group = module.out_channels // groups
        own = patches.view(batch, groups, -1, patches.shape[-1])[:, rows.to(g.device) // per_group]
        weight = torch.einsum("brsl,bskl->brsk", g, own)
    parts = [weight.reshape(batch, weighted, -1)]
    if module.bias is not None:
        parts.append(g.sum(3))
    return torch.cat(parts, dim=2)


def tapped_rows(
    model: nn.Module,
    selection: Selection,
    x: torch.Tensor,
    weights: Callable[[torch.Tensor], torch.Tensor],
) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, rows) for the batch `x`: rows[b, r] the gradient w.r.t. the
    selected blocks (in Selection.gather's order) of weights(logits)[r, b] .
    logits[b], for each sample b and each of the R weightings (weights:
    logits -> R x batch x C, detached). None where the selection has a layer
    Taps cannot take; the caller then differentiates another way."""
    with Taps(model, selection) as taps:
        if any(type(module) not in TAPPED for _, module, _ in taps.layers):
            return None
        logits = taps.forward(x, differentiate=True)
        if logits is None:
            return None
        patches = [unfolded(module, taps.inputs(name)) for name, module, _ in taps.layers]
        if any(p is None for p in patches):
            return None
        grads = taps.output_gradients(logits, weights(logits.detach()))
    parts = [_layer_rows(module, p, g, rows) for (_, module, rows), p, g in zip(taps.layers, patches, grads)]
    return logits.detach(), torch.cat(parts, dim=2)
