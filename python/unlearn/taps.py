"""Per-sample gradients of selected parameter blocks from one forward and one
batched backward pass, where they would otherwise take a vmap of the whole
backward over the samples. Forward hooks on the selected layers keep each
layer's input and add a zero shift to its output; autograd gives the
gradients w.r.t. the shifts (those w.r.t. the outputs), and these times the
layer's inputs (a Linear layer's input, a convolution's unfolded patches)
give each sample's gradient w.r.t. the layer's weights and bias.

That holds for Linear, Conv1d and Conv2d layers (zero padding) called once a
forward, on inputs whose first dimension is the batch, in a model whose
samples do not interact (eval mode), with weights used nowhere else. The
forward and the hooks check what they can see; every result is then
confirmed against autograd: a random combination of the per-sample rows
must equal the gradient of the same combination of the logits w.r.t. the
selected parameters (which catches tied or reparametrised weights and
layers whose first dimension is not the batch). Where anything fails, the
callers differentiate with torch.func instead."""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ._core import eval_mode
from .units import Selection

TAPPED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _tolerance(dtype: torch.dtype) -> float:
    """Relative agreement asked of the confirmation: the rounding of sums
    taken in another order, far below a wrong answer's error."""
    return 1e-9 if dtype == torch.float64 else 1e-3


class Taps:
    """Forward hooks on the selected layers of `model`, while used as a context
    manager (which also has the selected layers' parameters alone record
    gradients, so the graph starts at the first selected layer).
    A `forward` keeps each layer's input and its output or, to differentiate,
    a zero shift added to the output."""

    def __init__(self, model: nn.Module, selection: Selection):
        modules = dict(model.named_modules())
        self.model, self.selection = model, selection
        self.layers = [(name, modules[name], rows) for name, rows in selection.rows.items()]
        self.seen: dict[str, list[dict]] = {name: [] for name, _, _ in self.layers}
        self.differentiate = False
        params = dict(model.named_parameters())
        self._params = [(name, params[name]) for name, _ in selection.parameters()]
        self._all = list(params.values())
        self._recording: list[bool] = []
        self._handles: list = []

    def __enter__(self) -> "Taps":
        self._recording = [p.requires_grad for p in self._all]
        for p in self._all:
            p.requires_grad_(False)
        for _, p in self._params:
            p.requires_grad_(True)
        self._handles = [m.register_forward_hook(partial(self._hook, name=name)) for name, m, _ in self.layers]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for p, recording in zip(self._all, self._recording):
            p.requires_grad_(recording)

    def _hook(self, module, args, output, name):
        given = args[0] if args and isinstance(args[0], torch.Tensor) else None
        call = {
            "input": None if given is None else given.detach(),
            "version": None if given is None else given._version,
        }
        returned = output
        if self.differentiate and isinstance(output, torch.Tensor):
            call["shift"] = torch.zeros_like(output, requires_grad=True)
            returned = output + call["shift"]
        call.update(returned=returned, returned_version=getattr(returned, "_version", None))
        self.seen[name].append(call)
        return returned if self.differentiate else None

    def forward(self, x: torch.Tensor, differentiate: bool) -> Optional[torch.Tensor]:
        """The logits of `x`, each layer's call kept; None where the model is
        in training mode (samples may interact), does not return a batch of
        logits, or a layer was not called exactly once on a tensor whose first
        dimension is the batch."""
        if any(module.training for module in self.model.modules()):
            return None
        for found in self.seen.values():
            found.clear()
        self.differentiate = differentiate
        with torch.set_grad_enabled(differentiate):
            logits = self.model(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(x):
            return None
        for found in self.seen.values():
            if len(found) != 1 or found[0]["input"] is None or not isinstance(found[0]["returned"], torch.Tensor):
                return None
            if found[0]["input"].dim() == 0 or len(found[0]["input"]) != len(x) or len(found[0]["returned"]) != len(x):
                return None
        return logits

    def _call(self, name: str) -> dict:
        return self.seen[name][0]

    def inputs(self, name: str) -> torch.Tensor:
        return self._call(name)["input"]

    def returns(self, name: str, logits: torch.Tensor) -> bool:
        """Whether the layer's output, unchanged since, is `logits` itself:
        their Jacobian w.r.t. it is then the identity."""
        call = self._call(name)
        return call["returned"] is logits and logits._version == call["returned_version"]

    def inputs_unchanged(self) -> bool:
        """Whether no layer's input was changed in place after its call."""
        return all(self.inputs(name)._version == self._call(name)["version"] for name, _, _ in self.layers)

    def output_gradients(self, logits: torch.Tensor, weights: torch.Tensor) -> Optional[tuple[torch.Tensor, ...]]:
        """For each layer, the gradients w.r.t. its output of the R weighted
        sums weights[r, b] . logits[b] (weights: R x batch x C), as
        (R, batch, *output shape); None where autograd cannot give them (a
        layer run without gradients, say). Keeps the graph for `confirms`."""
        try:
            grads = torch.autograd.grad(
                logits,
                [self._call(name)["shift"] for name, _, _ in self.layers],
                grad_outputs=weights,
                is_grads_batched=True,
                retain_graph=True,
                allow_unused=True,
            )
        except RuntimeError:  # e.g. a tensor it needs was changed in place
            return None
        return None if any(g is None for g in grads) else grads

    def confirms(self, logits: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor) -> bool:
        """Whether the per-sample rows (batch, R, d_S) agree with autograd: a
        seeded random combination of them against the gradient w.r.t. the
        selected parameters of the same combination of the weighted logits."""
        gen = torch.Generator().manual_seed(0)
        mix = torch.randn(weights.shape[:2], generator=gen, dtype=torch.float64).to(logits.device, logits.dtype)
        target = torch.einsum("rb,rbc->bc", mix, weights)
        try:
            grads = torch.autograd.grad((target * logits).sum(), [p for _, p in self._params], allow_unused=True)
        except RuntimeError:
            return False
        if any(g is None for g in grads):
            return False
        truth = self.selection.gather({name: g for (name, _), g in zip(self._params, grads)})
        guess = torch.einsum("rb,brd->d", mix, rows)
        if guess.shape != truth.shape:
            return False
        scale = float(truth.abs().max()) if truth.numel() else 0.0
        return bool(((guess - truth).abs() <= _tolerance(rows.dtype) * scale).all())


def own_weights(model: nn.Module, module: nn.Module) -> bool:
    """Whether the layer's parameters are its own `weight` and `bias` alone,
    used by no other module: where they are tied or reparametrised (weight
    norm's `weight_g` and `weight_v`, say), the gradients w.r.t. its output
    times its inputs are not theirs, and the taps' confirmation would fail."""
    names = {name for name, _ in module.named_parameters(recurse=False)}
    if not names <= {"weight", "bias"}:
        return False
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    return all(uses[id(p)] == 1 for p in module.parameters(recurse=False))


def _strided(t: torch.Tensor) -> bool:
    return t.layout == torch.strided  # sparse tensors have no storage to count


def sample_bytes(
    model: nn.Module, selection: Selection, x: torch.Tensor, weightings: Optional[int], per_sample: bool = True
) -> int:
    """Bytes one sample is estimated to take in a pass that differentiates R =
    `weightings` weighted sums of its logits (None: one a class) w.r.t. the
    selected blocks, as `tapped_rows` or torch.func's per-sample passes do,
    counted on a forward pass of x[:1] in which only the selected parameters
    record: the tensors its autograd graph saves, once for the graph and R
    times over for the gradients flowing back (a bound: fewer are alive at
    once); the selected layers' inputs unfolded into patches; R rows of d_S
    entries, three times over (the rows and their centred and scaled
    copies); and where a selected layer is one the taps cannot take,
    torch.func's R gradients of each selected parameter whole. Without
    `per_sample` (a gradient summed over the batch), the graph alone."""
    fixed = {t.data_ptr() for t in [*model.parameters(), *model.buffers()] if _strided(t)}
    saved: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if _strided(t) and t.data_ptr() not in fixed:
            saved[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    with eval_mode(model), Taps(model, selection) as taps, torch.enable_grad():  # eval: no statistics updated
        uses = _OutsideUses([module for _, module, _ in taps.layers])
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), uses:
            logits = model(x[:1])
    if weightings is None:
        weightings = logits.shape[-1] if isinstance(logits, torch.Tensor) and logits.dim() > 0 else 1
    graph = sum(saved.values()) * (1 + weightings)
    if not per_sample:
        return graph
    patches, tapped = 0, not uses.found
    for name, module, _ in taps.layers:
        calls = taps.seen[name]
        tapped &= type(module) in TAPPED and len(calls) == 1 and own_weights(model, module)
        for call in calls:
            given = call["input"]
            spread = None if given is None else unfolded(module, given)
            tapped &= spread is not None
            if given is not None:
                patches += (given if spread is None else spread).numel() * given.element_size()
    params = dict(model.named_parameters())
    blocks = [params[name] for name, _ in selection.parameters()]
    item = max(p.element_size() for p in blocks)
    rows = 3 * weightings * selection.size(model) * item
    whole = 0 if tapped else weightings * sum(p.numel() for p in blocks) * item
    return graph + patches + rows + whole


class _OutsideUses(TorchFunctionMode):
    """While active, notes whether a parameter of one of the selected
    `layers` enters a torch function outside that layer's own forward (a
    weight the model also uses elsewhere, as a decoder reusing an encoder's
    weight does): the taps' gradients would miss that use, and their
    confirmation would send the layer to torch.func."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = layers
        self.owners = {id(p): layer for layer in self.layers for p in layer.parameters(recurse=False)}
        self.inside: list[nn.Module] = []
        self.found = False
        self._handles: list = []

    def __enter__(self):
        for layer in self.layers:
            self._handles.append(layer.register_forward_pre_hook(self._enter_layer))
            self._handles.append(layer.register_forward_hook(self._leave_layer))
        return super().__enter__()

    def _enter_layer(self, module: nn.Module, args) -> None:
        self.inside.append(module)

    def _leave_layer(self, module: nn.Module, args, output) -> None:
        self.inside.pop()

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in [*args, *kwargs.values()]:
            if isinstance(value, torch.Tensor) and id(value) in self.owners:
                self.found |= not self.inside or self.owners[id(value)] is not self.inside[-1]
        return func(*args, **kwargs)


def each_class(logits: torch.Tensor) -> torch.Tensor:
    """The weightings (C, batch, C) that pick each class's logit: with them the
    rows are the logits' Jacobians."""
    eye = torch.eye(logits.shape[1], dtype=logits.dtype, device=logits.device)
    return eye[:, None, :].expand(-1, len(logits), -1)


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


def layer_rows(module: nn.Module, patches: torch.Tensor, grads: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
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
    logits -> R x batch x C, detached), confirmed against autograd. None
    where the taps do not apply; the caller then differentiates another way."""
    with Taps(model, selection) as taps:
        if any(type(module) not in TAPPED or not own_weights(model, module) for _, module, _ in taps.layers):
            return None
        logits = taps.forward(x, differentiate=True)
        if logits is None:
            return None
        patches = [unfolded(module, taps.inputs(name)) for name, module, _ in taps.layers]
        if any(p is None for p in patches):
            return None
        weighted = weights(logits.detach())
        grads = taps.output_gradients(logits, weighted)
        if grads is None or not taps.inputs_unchanged():
            return None
        rows = torch.cat([layer_rows(m, p, g, r) for (_, m, r), p, g in zip(taps.layers, patches, grads)], dim=2)
        if not taps.confirms(logits, weighted, rows):
            return None
    return logits.detach(), rows
