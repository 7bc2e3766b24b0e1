"""Boundary Unlearning (Chen, Gao, Liu, Peng, Zhou; CVPR 2023): forget whole
classes by moving the decision boundary instead of the weights' memory of
the samples.

- Boundary Shrink relabels each forget sample with its nearest wrong class,
  the class an adversarial step from the sample (FGSM, or L-infinity PGD)
  lands in on the original model, and fine-tunes on the forget samples with
  those labels: the forget class's region shrinks into its neighbours.
- Boundary Expanding adds a shadow class (one more output of the last
  linear layer), fine-tunes the forget samples into it, and prunes the
  shadow output away: the forget samples' features end up where no kept
  class is.

Both run SGD (momentum 0.9) with the model in eval mode (BatchNorm keeps its
running statistics; the published code trains in train mode) under the guard
of `quality.descend` unless `guard=False`, on the forget samples batch by
batch (a DataLoader is never gathered). Retained data, when given, serves
only as the guard's probe."""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .._core import Positive, PositiveInt, Samples, eval_mode, first_inputs
from .attacks import pgd
from .distillation import frozen_copy
from .gradient_baselines import _cycle, _report, _steps, optimize
from .quality import descend, guard_probe
from .registry import register

PAPER_BOUND = 0.1
"""The paper's attack bound on images in [0, 1]: a tenth of the input range."""
PAPER_STEP = (8 / 255) / 0.1
"""The published PGD step (8/255) as a fraction of its bound (0.1)."""


def input_range(samples: Samples) -> tuple[float, float]:
    """The smallest and largest input value of `samples` (one pass, batch by batch)."""
    low, high = math.inf, -math.inf
    for inputs, _ in samples.batches():
        low, high = min(low, float(inputs.min())), max(high, float(inputs.max()))
    return low, high


def nearest_wrong_labels(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    bound: float,
    *,
    attack: str = "fgsm",
    step: Optional[float] = None,
    steps: int = 5,
    bounds: Optional[tuple[float, float]] = None,
    gen: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbour search of Boundary Shrink for a batch: an untargeted
    L-infinity attack of radius `bound` from every sample at once (FGSM: one
    step of size `bound` along the sign of the gradient; "pgd": `steps`
    steps of size `step` from a random start drawn from `gen`), in eval
    mode. Returns the attacked inputs and the labels the model gives them,
    the nearest wrong class where the attack crosses the boundary (the
    sample's own label where it does not)."""
    with eval_mode(model):
        if attack == "fgsm":
            x_adv = pgd(
                model, inputs, labels, bound, bound, 1, bounds, None, norm="linf", targeted=False, random_start=False
            )
        else:
            step = PAPER_STEP * bound if step is None else step
            x_adv = pgd(model, inputs, labels, bound, step, steps, bounds, gen, norm="linf", targeted=False)
        with torch.no_grad():
            return x_adv, model(x_adv).argmax(1)


@register(
    "boundary_shrink",
    "fine-tune forget samples to the nearest wrong class found by an adversarial step (Boundary Shrink, Chen et al.)",
    scope="class",
    needs=("forget",),
    controls=("lr", "epochs", "bound"),
)
def boundary_shrink(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Optional[Samples],
    forget_classes: list[int],
    seed: int,
    bound: Optional[Positive] = None,
    attack: Literal["fgsm", "pgd"] = "fgsm",
    attack_steps: PositiveInt = 5,
    step: Optional[Positive] = None,
    epochs: PositiveInt = 10,
    lr: Positive = 1e-5,
    batch_size: PositiveInt = 64,
    guard: bool = True,
) -> dict:
    """Every forget batch is relabelled, as it is read, with the classes an
    attack on the original model (a frozen copy) sends it to; the model is
    fine-tuned on the forget samples with those labels for `epochs` passes.
    Defaults are the published code's: FGSM with bound 0.1 on inputs in
    [0, 1] (here 0.1 times the range of the forget inputs, to which the
    attacked inputs are clamped; the published code also rounds to 1/255,
    which is left out), 10 epochs, SGD lr 1e-5 (momentum 0.9), batches of 64.
    A sample the attack does not carry across the boundary keeps its own
    label, as in the published code (`report["attack_success"]` gives the
    share that crossed). Retained data, when given, is the guard's probe.

    Options:
        bound: L-infinity radius of the attack (None: 0.1 x the forget inputs' range, the paper's 0.1 on [0, 1])
        attack: "fgsm" (one step of size bound, the published code) or "pgd" (attack_steps steps of size step)
        attack_steps: PGD steps (attack "pgd")
        step: PGD step size (None: bound x (8/255) / 0.1, the published ratio)
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: forget samples per step
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    low, high = input_range(forget)
    bound = PAPER_BOUND * (high - low) if bound is None else bound
    if not bound > 0:
        raise ValueError("bound: the forget inputs are all equal, so the default bound is 0; pass bound=...")
    original = frozen_copy(model)
    gen = torch.Generator().manual_seed(seed)
    crossed, seen = [0], [0]

    def relabel(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _, nearest = nearest_wrong_labels(
            original, inputs, labels, bound, attack=attack, step=step, steps=attack_steps, bounds=(low, high), gen=gen
        )
        crossed[0] += int((nearest != labels).sum())
        seen[0] += len(labels)
        return nearest

    steps = _steps(forget, epochs, batch_size)
    run = optimize(
        model,
        [(forget, 1.0)],
        steps,
        lr,
        batch_size,
        seed + 1,
        probe=guard_probe(retain, seed),
        guard=guard,
        relabel=relabel,
    )
    return {**_report(run), "bound": bound, "attack_success": crossed[0] / max(1, seen[0])}


class _ShadowClass(nn.Module):
    """`model` with one more output beside those of its output layer `head`:
    the shadow class, a row of weights (and a bias) on the features `head`
    reads. `forward` is the model as it is (the pruned model the guard
    watches); `widened` adds the shadow logit."""

    def __init__(self, model: nn.Module, head: nn.Linear, gen: torch.Generator):
        super().__init__()
        self.model, self.features = model, None
        # nn.Linear's own initialisation, for one more row, from the seeded generator.
        scale = 1 / math.sqrt(head.in_features)
        weight = (2 * torch.rand(1, head.in_features, generator=gen, dtype=torch.float64) - 1) * scale
        self.weight = nn.Parameter(weight.to(head.weight))
        self.bias = None
        if head.bias is not None:
            self.bias = nn.Parameter(
                ((2 * torch.rand(1, generator=gen, dtype=torch.float64) - 1) * scale).to(head.bias)
            )
        self.handle = head.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.features = args[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def widened(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return torch.cat([out, F.linear(self.features, self.weight, self.bias)], dim=1)


def output_layer(model: nn.Module, inputs: torch.Tensor, method: str = "boundary_expand") -> nn.Linear:
    """The nn.Linear whose output is the model's output (the last one called,
    its output returned as it is); ValueError for any other model."""
    calls: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda module, args, out: calls.append((module, out)))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if not calls or calls[-1][1] is not out or out.dim() != 2:
        raise ValueError(
            f"{method} needs a model whose output is the output of an nn.Linear layer (it adds the shadow class "
            f"to that layer); {type(model).__name__}'s output is not: use boundary_shrink"
        )
    return calls[-1][0]


@register(
    "boundary_expand",
    "fine-tune forget samples into a temporary shadow class, then prune it (Boundary Expanding, Chen et al.)",
    scope="class",
    needs=("forget",),
    controls=("lr", "epochs"),
)
def boundary_expand(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Optional[Samples],
    forget_classes: list[int],
    seed: int,
    epochs: PositiveInt = 10,
    lr: Positive = 1e-5,
    batch_size: PositiveInt = 64,
    guard: bool = True,
) -> dict:
    """The model's output layer, which must be an nn.Linear whose output is
    the model's output (other models are refused with a ValueError), gains
    one output, initialised like a new nn.Linear row (seeded); every weight
    of the model and the shadow row is fine-tuned to put the forget samples
    in the shadow class for `epochs` passes; the shadow output is then
    dropped, leaving the model's architecture as it was. Defaults are the
    published code's: 10 epochs, SGD lr 1e-5 (momentum 0.9), batches of 64.
    Retained data, when given, is the guard's probe, scored on the model
    without the shadow output.

    Options:
        epochs: passes over the forget data
        lr: SGD learning rate (momentum 0.9)
        batch_size: forget samples per step
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    head = output_layer(model, first_inputs(forget))
    gen = torch.Generator().manual_seed(seed)
    shadow = _ShadowClass(model, head, gen)
    batches = _cycle(forget, batch_size, gen)
    try:

        def loss_fn() -> torch.Tensor:
            inputs, _ = next(batches)
            out = shadow.widened(inputs)
            return F.cross_entropy(out, torch.full_like(out[:, 0], out.shape[1] - 1, dtype=torch.long))

        steps = _steps(forget, epochs, batch_size)
        run = descend(shadow, loss_fn, steps, lr, probe=guard_probe(retain, seed), guard=guard)
    finally:
        shadow.handle.remove()
    return _report(run)
