"""Gradients and curvature restricted to selected parameter blocks, with
torch.func: per-sample gradients (for Fisher / Gauss-Newton factors), mean
gradients, exact Hessians by forward-over-reverse differentiation, and the
finite-difference estimate from two checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap

from ._core import Samples
from .taps import Taps, each_class, layer_rows, own_weights, sample_bytes, tapped_rows, unfolded
from .units import Selection

MAX_BYTES = 256 << 20
"""Default bytes the passes of one batch may take (`budgeted`)."""


def budgeted(
    model: nn.Module,
    selection: Selection,
    samples: Samples,
    weightings: Optional[int],
    cap: int,
    max_bytes: int,
    per_sample: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one pass over `samples` (read `cap` at a time), cut into
    pieces whose differentiating pass is estimated to fit in `max_bytes`
    (`taps.sample_bytes` of the first batch, R = `weightings`, `per_sample`
    results or a summed one; at least one sample). On the CPU the piece size
    barely changes the time per sample (a full-width ResNet-18's logit
    Jacobians took 13.2 s per 256 samples in pieces of 4 and 13.6 s in
    pieces of 64, at 0.47 and 1.9 GB)."""
    size = None
    for x, y in samples.batches(cap):
        if size is None:
            each = sample_bytes(model, selection, x, weightings, per_sample)
            size = max(1, min(cap, max_bytes // max(1, each)))
        for start in range(0, len(x), size):
            yield x[start : start + size], y[start : start + size]


def restricted_forward(model: nn.Module, selection: Selection) -> tuple[Callable, torch.Tensor]:
    """forward(v, x): the model's outputs with the selected rows of the
    parameters replaced by the flat vector v (the model itself unchanged);
    and v at the current weights."""
    base = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    blocks = selection.parameters()
    sizes = [int(base[name][rows].numel()) for name, rows in blocks]

    def forward(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = dict(base)
        for (name, rows), part in zip(blocks, v.split(sizes)):
            p = base[name]
            rows = rows.to(p.device)
            params[name] = p.index_put((rows,), part.view(len(rows), *p.shape[1:]))
        return functional_call(model, (params, buffers), (x,))

    return forward, selection.gather(base)


def _restricted_loss(model: nn.Module, selection: Selection) -> tuple[Callable, torch.Tensor]:
    """loss(v, x, y): mean cross-entropy with the selected rows of the
    parameters replaced by the flat vector v; and v at the current weights."""
    forward, v = restricted_forward(model, selection)
    return lambda v, x, y: F.cross_entropy(forward(v, x), y), v


def per_sample_gradients(
    model: nn.Module, selection: Selection, split: Samples, batch_size: int = 256, max_bytes: int = MAX_BYTES
) -> torch.Tensor:
    """(samples, d_S): gradient of each sample's loss w.r.t. the selected blocks
    (model in eval mode): from one backward pass a batch through the layers'
    taps (`taps.tapped_rows`), or, for layers they cannot take, a vectorised
    per-sample pass; batches of at most `batch_size` that fit in `max_bytes`."""
    loss, v = _restricted_loss(model, selection)
    one = vmap(grad(lambda v, x, y: loss(v, x[None], y[None])), in_dims=(None, 0, 0))
    out = []
    for x, y in budgeted(model, selection, split, 1, batch_size, max_bytes):

        def residual(logits: torch.Tensor, y: torch.Tensor = y) -> torch.Tensor:
            return (torch.softmax(logits, dim=1) - F.one_hot(y, logits.shape[1]).to(logits.dtype))[None]

        tapped = tapped_rows(model, selection, x, residual)
        out.append(tapped[1][:, 0] if tapped is not None else one(v, x, y))
    return torch.cat(out)


def logit_jacobians(model: nn.Module, selection: Selection, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, J): J (batch, C, d_S) the Jacobian of each sample's logits
    w.r.t. the selected blocks, through the layers' taps (C backward passes
    at once) or, for layers they cannot take, by jacrev per sample."""
    tapped = tapped_rows(model, selection, x, each_class)
    return tapped if tapped is not None else func_jacobians(model, selection, x)


def func_jacobians(model: nn.Module, selection: Selection, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`logit_jacobians` by torch.func alone: jacrev of the restricted forward,
    vmapped over the samples (any model torch.func can differentiate)."""
    forward, v = restricted_forward(model, selection)
    with torch.no_grad():
        logits = forward(v, x)
    return logits, vmap(jacrev(lambda v, x: forward(v, x[None])[0]), in_dims=(None, 0))(v, x)


def dense_fits(size: int, max_bytes: int) -> bool:
    """Whether a dense size x size float64 matrix fits in `max_bytes`."""
    return size * size * 8 <= max_bytes


def expected_fisher(
    model: nn.Module, selection: Selection, samples: Samples, max_bytes: int
) -> tuple[torch.Tensor, bool]:
    """The Gauss-Newton matrix of the selected blocks, the Fisher with the
    expectation over the model's labels taken exactly:
    H = mean_i J_i^T (diag p_i - p_i p_i^T) J_i, J_i the Jacobian of sample
    i's logits. It is built from rows sqrt(C p_ic) (J_ic - p_i^T J_i), C per
    sample, so it has rank up to samples x (C - 1), where one label drawn per
    sample gives at most samples. Returns (H, False), H dense in float64, when
    d_S^2 doubles fit in `max_bytes`; else (U, True), the rows as a factor
    (H = U^T U / rows), as many as fit in `max_bytes`. Each batch's Gram
    matrix is formed in the rows' dtype (as accurate as the Jacobians they
    come from; float32 halves the time of this, the costliest part) and
    summed over batches in float64. The Jacobians are taken in batches of at
    most 64 samples that fit in `max_bytes` too."""
    d = selection.size(model)
    dense = dense_fits(d, max_bytes)
    gram: Optional[torch.Tensor] = None
    rows, count, kept, room, classes = [], 0, 0, max(1, max_bytes // (4 * d)), None
    for x, _ in budgeted(model, selection, samples, None, 64, max_bytes):
        if not dense and classes is not None:  # only the samples whose rows still fit
            x = x[: -(-(room - kept) // classes)]
        logits, j = logit_jacobians(model, selection, x)  # (batch, C, d_S)
        classes = logits.shape[1]
        p = torch.softmax(logits.double(), dim=1).to(j.dtype)
        centred = j - torch.einsum("bc,bcd->bd", p, j)[:, None, :]
        part = ((p * p.shape[1]).sqrt()[:, :, None] * centred).reshape(-1, d)
        count += len(part)
        if dense:  # summed in place: the float64 matrix and one batch's product in the rows' dtype
            gram = torch.zeros(d, d, dtype=torch.float64, device=part.device) if gram is None else gram
            gram.add_(part.T @ part)
        else:
            rows.append(part[: room - kept])
            kept += len(rows[-1])
            if kept >= room:
                break
    if dense:
        return gram.div_(count), False
    return torch.cat(rows), True


@dataclass(frozen=True)
class KroneckerFactor:
    """The Gauss-Newton matrix H = mean_i J_i^T J_i of a selection of Linear
    layers, held as its per-sample parts. Sample i's rows of J w.r.t. layer
    l's selected entries are u_il (x) a_il: a_il the layer's input (with a 1
    for its bias), u_il = sqrt(p_i) (G_il - p_i^T G_il) (C x S_l), G_il the
    logits' Jacobian w.r.t. the layer's selected outputs. A product H x then
    costs O(samples x (K_l + C) x S_l) per layer, where forming H costs
    O(samples x C x S^2 x K^2)."""

    inputs: list[torch.Tensor]  # a_l: (samples, K_l), float64
    centred: list[torch.Tensor]  # u_l: (samples, C, S_l), float64
    positions: list[torch.Tensor]  # where layer l's (row, input) entries sit in the flat vector

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        """H x for a flat float64 vector x."""
        logits = sum(
            torch.einsum("ics,is->ic", u, a @ x[at].view(u.shape[2], -1).T)
            for a, u, at in zip(self.inputs, self.centred, self.positions)
        )
        out = torch.empty_like(x)
        for a, u, at in zip(self.inputs, self.centred, self.positions):
            out[at] = (torch.einsum("ics,ic->si", u, logits) @ a).reshape(-1) / len(a)
        return out

    def diagonal(self) -> torch.Tensor:
        """diag(H): mean_i (sum_c u_ics^2) a_ik^2 at entry (s, k) of layer l."""
        out = torch.empty(sum(len(at) for at in self.positions), dtype=torch.float64, device=self.inputs[0].device)
        for a, u, at in zip(self.inputs, self.centred, self.positions):
            out[at] = (u.square().sum(1).T @ a.square()).reshape(-1) / len(a)
        return out

    def solve(self, g: torch.Tensor, damping: float, tolerance: float = 1e-10) -> tuple[torch.Tensor, dict]:
        """(H + damping I)^-1 g by conjugate gradients preconditioned with the
        diagonal, until the residual is `tolerance` times ||g|| (at most 10 d
        steps, fewer where the system is singular to rounding); also the steps
        taken and the relative residual reached."""
        scale = 1.0 / (self.diagonal() + damping)
        x = torch.zeros_like(g)
        r = g.clone()
        z = scale * r
        direction = z.clone()
        rz, bound, steps = float(r @ z), tolerance * float(g.norm()), 0
        while float(r.norm()) > bound and steps < 10 * len(g):
            h = self @ direction + damping * direction
            curving = float(direction @ h)
            if not curving > 0:  # underflow on a (numerically) singular system: no further progress
                break
            step = rz / curving
            x += step * direction
            r -= step * h
            z = scale * r
            rz, previous = float(r @ z), rz
            direction = z + (rz / previous) * direction
            steps += 1
        return x, {"steps": steps, "residual": float(r.norm()) / max(float(g.norm()), 1e-300)}


def kronecker_factor(
    model: nn.Module, selection: Selection, samples: Samples, max_bytes: int = MAX_BYTES
) -> Optional[KroneckerFactor]:
    """The `KroneckerFactor` of `expected_fisher`'s matrix when every selected
    block is in an nn.Linear layer called once per forward on (batch, in)
    inputs (the first batch confirmed against autograd, `taps.Taps`); None
    otherwise. One pass over `samples` gathers each layer's inputs and
    centred output Jacobians: C backward passes a batch, or none once the
    one selected layer's output is seen to be the model's output (its
    Jacobian is the identity); batches of at most 64 that fit in `max_bytes`."""
    inputs: list[list[torch.Tensor]] = [[] for _ in selection.rows]
    centred: list[list[torch.Tensor]] = [[] for _ in selection.rows]
    with Taps(model, selection) as taps:
        if any(type(module) is not nn.Linear or not own_weights(model, module) for _, module, _ in taps.layers):
            return None  # before the first batch, whose budget probe would be wasted
        first, identity = taps.layers[0][0], False
        confirmed = False
        for x, _ in budgeted(model, selection, samples, None, 64, max_bytes):
            logits = taps.forward(x, differentiate=False) if identity else None
            direct = logits is not None and taps.returns(first, logits) and taps.inputs_unchanged()
            if not direct:
                logits = taps.forward(x, differentiate=True)
            if logits is None or any(taps.inputs(name).dim() != 2 for name, _, _ in taps.layers):
                return None
            outputs = each_class(logits)
            grads = [outputs] if direct else taps.output_gradients(logits, outputs)
            if grads is None or not taps.inputs_unchanged():
                return None
            if not confirmed:
                rows = [layer_rows(m, unfolded(m, taps.inputs(n)), g, r) for (n, m, r), g in zip(taps.layers, grads)]
                if not taps.confirms(logits, outputs, torch.cat(rows, dim=2)):
                    return None
                confirmed, identity = True, len(taps.layers) == 1 and taps.returns(first, logits)
            p = torch.softmax(logits.detach().double(), dim=1)
            for i, ((name, module, rows), g) in enumerate(zip(taps.layers, grads)):
                g = g.permute(1, 0, 2)[:, :, rows.to(g.device)].double()  # (batch, C, S_l)
                centred[i].append(p.sqrt()[:, :, None] * (g - torch.einsum("bc,bcs->bs", p, g)[:, None, :]))
                inputs[i].append(_with_bias(taps.inputs(name), module).double())
    return KroneckerFactor(
        [torch.cat(parts) for parts in inputs],
        [torch.cat(parts) for parts in centred],
        _layer_offsets(model, selection),
    )


def _with_bias(inputs: torch.Tensor, module: nn.Linear) -> torch.Tensor:
    """The layer's inputs with a column of ones for its bias, if it has one."""
    if module.bias is None:
        return inputs
    return torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)


def _layer_offsets(model: nn.Module, selection: Selection) -> list[torch.Tensor]:
    """For each selected Linear layer, the positions in the flat vector of
    `Selection.gather` of its entries in (row, input, then bias) order."""
    params = dict(model.named_parameters())
    positions: dict[str, torch.Tensor] = {}
    offset = 0
    for name, rows in selection.parameters():
        size = int(params[name][rows].numel())
        positions[name] = torch.arange(offset, offset + size).view(len(rows), -1)
        offset += size
    out = []
    for layer in selection.rows:
        prefix = f"{layer}." if layer else ""
        parts = [positions[prefix + "weight"]]
        if prefix + "bias" in positions:
            parts.append(positions[prefix + "bias"])
        out.append(torch.cat(parts, dim=1).reshape(-1).to(params[prefix + "weight"].device))
    return out


def mean_gradient(
    model: nn.Module, selection: Selection, samples: Samples, batch_size: int = 512, max_bytes: int = MAX_BYTES
) -> torch.Tensor:
    """Gradient of the mean loss over `samples` w.r.t. the selected blocks
    (model in eval mode: the batches, of at most `batch_size` that fit in
    `max_bytes`, may be of any size), in one pass. Only the selected
    parameters' tensors record the graph, so layers before the first
    selected one run as plain inference."""
    params = dict(model.named_parameters())
    wanted = [name for name, _ in selection.parameters()]
    grads = {name: torch.zeros_like(params[name]) for name in wanted}
    recording = {name: p.requires_grad for name, p in params.items()}
    count = 0
    try:
        for name, p in params.items():
            p.requires_grad_(name in grads)
        for x, y in budgeted(model, selection, samples, 1, batch_size, max_bytes, per_sample=False):
            loss = F.cross_entropy(model(x), y, reduction="sum")
            for name, g in zip(wanted, torch.autograd.grad(loss, [params[n] for n in wanted])):
                grads[name] += g
            count += len(y)
    finally:
        for name, p in params.items():
            p.requires_grad_(recording[name])
    return selection.gather(grads) / count


def exact_hessian(
    model: nn.Module,
    selection: Selection,
    split: Samples,
    batch_size: int = 512,
    chunk_size: Optional[int] = 64,
    max_bytes: int = MAX_BYTES,
) -> torch.Tensor:
    """(d_S, d_S) Hessian of the mean loss over `split` w.r.t. the selected
    blocks: forward-over-reverse Hessian-vector products with the unit
    vectors, `chunk_size` at a time (None: all), on batches of at most
    `batch_size` that fit in `max_bytes` (each product taken as two
    weightings)."""
    loss, v = _restricted_loss(model, selection)
    basis = torch.eye(v.numel(), dtype=v.dtype, device=v.device)
    total, count = torch.zeros_like(basis), 0
    products = min(chunk_size or len(v), len(v))
    for x, y in budgeted(model, selection, split, 2 * products, batch_size, max_bytes):

        def hvp(t: torch.Tensor, x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            return jvp(lambda w: grad(loss)(w, x, y), (v,), (t,))[1]

        total += vmap(hvp, chunk_size=chunk_size)(basis) * len(y)
        count += len(y)
    return total / count


def finite_difference_factor(
    model: nn.Module,
    selection: Selection,
    split: Samples,
    checkpoints: tuple[dict, dict],
    max_bytes: int = MAX_BYTES,
) -> torch.Tensor:
    """Rank-1 factor u (1 x d_S) of the checkpoint estimate H ~ u^T u, with
    u = (g_last - g_prev) / sqrt(||w_last - w_prev||_1): the published
    finite-difference curvature, with each checkpoint's own gradient (batches
    that fit in `max_bytes`)."""
    grads, weights = [], []
    original = {k: t.detach().clone() for k, t in model.state_dict().items()}
    try:
        for state in checkpoints:
            model.load_state_dict(state)
            grads.append(mean_gradient(model, selection, split, max_bytes=max_bytes))
            weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    finally:
        model.load_state_dict(original)
    distance = float((weights[1] - weights[0]).abs().sum())
    if distance == 0:
        raise ValueError("checkpoints: the two checkpoints have identical weights")
    return ((grads[1] - grads[0]) / distance**0.5)[None, :]


def diagonal_fisher(model: nn.Module, split: Samples, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Mean over `split` of each sample's squared loss gradient, for every
    trainable parameter (the diagonal empirical Fisher information): per-sample
    gradients in one vectorised pass per batch, model in its current mode."""
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def sample_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (p, buffers), (x[None],)), y[None])

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    total, count = {name: torch.zeros_like(p) for name, p in params.items()}, 0
    for x, y in split.batches(batch_size):
        for name, g in per_sample(params, x, y).items():
            total[name] += g.square().sum(0)
        count += len(y)
    return {name: t / count for name, t in total.items()}
