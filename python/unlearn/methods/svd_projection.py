"""Training-free class forgetting by SVD projection (Kodge, Saha, Roy; TMLR
2024): per Conv/Linear layer, the input activations of a few retained and
forgotten samples span a retain space and a forget space; the weights are
projected away from the part of the forget space the retain space does not
share. One forward pass, no gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Positive, PositiveInt, Samples, Split, StageTimer, Stream, first_inputs
from .registry import register

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _check_layer(name: str, module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups != 1:
            raise ValueError(
                f"svd_projection: layer {name!r} is a grouped convolution (groups={module.groups}); not supported"
            )
        if module.padding_mode != "zeros":
            raise ValueError(
                f"svd_projection: layer {name!r} pads with {module.padding_mode!r}; only zero padding is supported"
            )


def _conv_padding(module: nn.Module) -> tuple[int, ...]:
    if not isinstance(module.padding, str):
        return tuple(module.padding)
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    total = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
    if any(t % 2 for t in total):
        raise ValueError("svd_projection: padding='same' with an even receptive field pads unevenly; not supported")
    return tuple(t // 2 for t in total)


def layer_patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows the layer's weight multiplies: (rows, d), d = in_features for
    Linear and C_in * prod(kernel) for Conv (unfolded with the layer's own
    kernel, dilation, padding and stride)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, dilation, stride = (1, *module.kernel_size), (1, *module.dilation), (1, *module.stride)
        padding = (0, *_conv_padding(module))
    else:
        kernel, dilation, stride, padding = module.kernel_size, module.dilation, module.stride, _conv_padding(module)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (N, d, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def layer_inputs(
    model: nn.Module, layers: list[tuple[str, nn.Module]], inputs: torch.Tensor, max_patches: int, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """Per layer, at most `max_patches` rows of its input patches (float64),
    from one forward pass of `inputs` in batches; a batch keeps its share of
    the budget, drawn at random."""
    kept: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    batch = 256
    hooks = []
    for name, module in layers:

        def hook(module, args, output, name=name):
            rows = layer_patches(module, args[0].detach())
            share = max(1, (max_patches * args[0].shape[0] + len(inputs) - 1) // len(inputs))
            if rows.shape[0] > share:
                rows = rows[torch.randperm(rows.shape[0], generator=gen)[:share].to(rows.device)]
            kept[name].append(rows.double())

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch):
                model(inputs[start : start + batch])
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(parts)[:max_patches] for name, parts in kept.items()}


def importance_basis(rows: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors U (d x r) of R = rows^T with importances
    lambda_i = alpha s_i / ((alpha - 1) s_i + 1), s_i the normalised energy
    sigma_i^2 / sum sigma^2, so M(alpha) = U diag(lambda) U^T. Computed from
    the smaller Gram matrix (R R^T or R^T R) by a symmetric eigensolver."""
    n, d = rows.shape
    if n >= d:
        energy, u = torch.linalg.eigh(rows.T @ rows)
    else:
        energy, v = torch.linalg.eigh(rows @ rows.T)
        u = rows.T @ v
    keep = energy > energy.max() * d * torch.finfo(energy.dtype).eps
    energy, u = energy[keep], u[:, keep]
    if n < d:
        u = u / energy.sqrt()  # R v / sigma: unit columns
    s = energy / energy.sum()
    return u, alpha * s / ((alpha - 1) * s + 1)


def project_weight(
    w: torch.Tensor, retain: tuple[torch.Tensor, torch.Tensor], forget: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """W P^T with P = I - (M_f - M_f M_r), as
    W - ((W U_f L_f) - (W U_r L_r)(U_r^T U_f L_f)) U_f^T: never a d x d matrix."""
    (u_r, l_r), (u_f, l_f) = retain, forget
    return w - ((w @ u_f) * l_f - ((w @ u_r) * l_r) @ ((u_r.T @ u_f) * l_f)) @ u_f.T


def _per_class(samples: Samples, count: int, classes: int, gen: torch.Generator) -> Split:
    """Up to `count` samples spread evenly over the classes of `samples`, at
    random (a Stream, which cannot list its classes before it is read, is
    spread over the `classes` it is expected to hold)."""
    if isinstance(samples, Stream):
        picked = samples.sample_per_class(max(1, count // classes), gen).values()
        return Split(torch.cat([p.inputs for p in picked]), torch.cat([p.labels for p in picked]))
    present = samples.labels.unique()
    each = max(1, count // len(present))
    rows = []
    for c in present.tolist():
        found = torch.nonzero(samples.labels == c)[:, 0]
        rows.append(found[torch.randperm(len(found), generator=gen)[:each].to(found.device)])
    rows = torch.cat(rows)
    return Split(samples.inputs[rows], samples.labels[rows])


def _projected_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Conv/Linear layers of `model`, checked to be ones the method projects."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)]
    if not layers:
        raise ValueError("model has no Conv1d, Conv2d or Linear layer: svd_projection has nothing to project")
    for name, module in layers:
        _check_layer(name, module)
    return layers


def _project(layers: list[tuple[str, nn.Module]], retain_rows, forget_rows, alpha_r: float, alpha_f: float) -> dict:
    """W <- W P^T in every layer; returns each layer's input size and ranks."""
    spaces = {}
    with torch.no_grad():
        for name, module in layers:
            kept = importance_basis(retain_rows[name], alpha_r)
            gone = importance_basis(forget_rows[name], alpha_f)
            w = module.weight.reshape(module.weight.shape[0], -1)
            module.weight.copy_(project_weight(w.double(), kept, gone).view_as(module.weight).to(module.weight.dtype))
            spaces[name] = {
                "dim": w.shape[1],
                "retain_rank": int(kept[0].shape[1]),
                "forget_rank": int(gone[0].shape[1]),
            }
    return spaces


@register(
    "svd_projection",
    "project every layer's weights off the forget classes' activation space (Kodge et al.)",
    scope="class",
    needs=("forget", "retain"),
    controls=("alpha_r", "alpha_f"),
)
def svd_projection(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: list[int],
    seed: int,
    alpha_r: Positive = 100.0,
    alpha_f: Positive = 3.0,
    samples: PositiveInt = 900,
    max_patches: PositiveInt = 10000,
) -> dict:
    """Forgets `forget_classes` without training, from samples of the forget
    classes (in `forget`, or found in `retain`) and of the other classes (in
    `retain`): `samples` retained samples spread evenly over the other classes
    and as many from the forget classes (all there are when fewer). Every
    Conv/Linear layer, the classifier included, gets W <- W P^T from its input
    activations of the original model (biases and BatchNorm untouched).
    Defaults are the paper's CIFAR-10 ones; spaces are computed in float64.
    It forgets where some layer's input gives the class a direction of its
    own, such as the hidden units of a fully connected classifier (the digits
    "vgg"); where the other classes span the forget class's activations in
    every layer (the digits "cnn") it removes only part of the class.

    Options:
        alpha_r: scaling of the retain space's importances (the paper's alpha_r)
        alpha_f: scaling of the forget space's importances (the paper's alpha_f)
        samples: samples drawn from each side, spread evenly over its classes
        max_patches: input rows (convolution patches) kept per layer and side
    """
    layers = _projected_layers(model)
    model.eval()
    with torch.no_grad():
        classes = model(first_inputs(forget)).shape[1]
    timer = StageTimer()
    gen = torch.Generator().manual_seed(seed)
    with timer("activations"):
        kept = _per_class(retain, samples, classes - len(forget_classes), gen)
        retain_rows = layer_inputs(model, layers, kept.inputs, max_patches, gen)
        gone = _per_class(forget, samples, len(forget_classes), gen)
        forget_rows = layer_inputs(model, layers, gone.inputs, max_patches, gen)
    with timer("projection"):
        spaces = _project(layers, retain_rows, forget_rows, alpha_r, alpha_f)
    return {"layers": spaces, "alpha_r": alpha_r, "alpha_f": alpha_f, "timings": timer.seconds}
