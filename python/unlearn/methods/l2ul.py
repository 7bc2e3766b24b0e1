"""Learning to Unlearn, instance-wise (Cha, Cho, Hwang, Lee, Moon, Lee; AAAI
2024): push the forget instances to wrong labels while targeted adversarial
examples of them, labelled with their target classes, anchor the decision
boundary, and a MAS weight-importance penalty protects what the rest of the
data relies on. Needs no retained data; given some, its guard watches them."""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._core import NonNegative, Positive, PositiveInt, Samples, Split, StageTimer, eval_mode, materialise
from .attacks import targeted_pgd
from .quality import descend, guard_probe
from .registry import register


def mas_penalty_weights(model: nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """1 - (per-tensor min-max normalised |grad of mean ||f(x)||_2|): near 1
    where the forget outputs do not depend on a weight. A constant tensor
    gets weight 1 everywhere (nothing singles it out)."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad(model(inputs).norm(dim=1).mean(), list(params.values()), allow_unused=True)
    out = {}
    for (name, p), g in zip(params.items(), grads):
        omega = torch.zeros_like(p) if g is None else g.abs()
        span = omega.max() - omega.min()
        out[name] = 1 - ((omega - omega.min()) / span if span > 0 else torch.zeros_like(omega))
    return out


def _check_relabel(variant: str, relabel_to, forget: Split) -> None:
    if variant != "relabel":
        return
    if relabel_to is None or torch.as_tensor(relabel_to).shape != forget.labels.shape:
        raise ValueError("relabel_to: the relabel variant needs one new label per forget sample")
    if bool((torch.as_tensor(relabel_to).to(forget.labels.device) == forget.labels).any()):
        raise ValueError("relabel_to: every new label must differ from the sample's own label")


def adversarial_anchors(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_adv: int, eps: float, pgd_steps: int, bounds, gen
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """`n_adv` targeted PGD restarts per forget instance, towards random wrong
    classes; only those the model assigns to their target are kept. Returns
    (examples, targets, success rate)."""
    with eval_mode(model), torch.no_grad():
        classes = model(x[:1]).shape[1]
    with eval_mode(model):
        # n_adv random targets t != y per instance, all restarts in one batch.
        shift = torch.randint(1, classes, (len(x), n_adv), generator=gen).to(y.device)
        targets = ((y[:, None] + shift) % classes).reshape(-1)
        x_adv = targeted_pgd(model, x.repeat_interleave(n_adv, 0), targets, eps, eps / 40, pgd_steps, bounds, gen)
        with torch.no_grad():
            hit = model(x_adv).argmax(1) == targets
    # A restart that did not reach its target is a copy of the forget
    # instance with a wrong label, not a point on the target's side of the
    # boundary: training on it flips the instance's neighbours too.
    return x_adv[hit], targets[hit], float(hit.double().mean())


def _done(out: torch.Tensor, wanted: torch.Tensor, relabel: bool) -> bool:
    """Whether every instance carries its new label (relabel) or none its own."""
    hits = out.detach().argmax(1) == wanted
    return bool(hits.all()) if relabel else not bool(hits.any())


def unlearn_instances(
    model: nn.Module,
    x: torch.Tensor,
    wanted: torch.Tensor,
    anchors: tuple[torch.Tensor, torch.Tensor],
    weights: dict[str, torch.Tensor],
    *,
    relabel: bool,
    lr: float,
    importance: float,
    max_steps: int,
    probe: Optional[Split] = None,
    guard: bool = True,
) -> tuple[int, bool, Optional[dict[str, Any]]]:
    """Full-batch SGD on the forget term (ascent away from the labels, or
    descent to `wanted` when relabelling) and the adversarial anchors, with
    the MAS penalty, until every instance is done or `max_steps` run out,
    under the guard of `quality.descend` (watching `probe`). Returns (steps
    kept, done, the guard's report)."""
    x_adv, targets = anchors
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    anchor = {name: p.detach().clone() for name, p in params.items()}
    n_f, n_a = len(x), len(x_adv)

    def loss_fn() -> Optional[torch.Tensor]:
        out = model(x)
        if _done(out, wanted, relabel):
            return None
        forget_term = F.cross_entropy(out, wanted)
        forget_term = forget_term if relabel else -forget_term
        adversarial_term = F.cross_entropy(model(x_adv), targets) if n_a else 0.0
        loss = (n_f * forget_term + n_a * adversarial_term) / (n_f + n_a)
        penalty = sum((weights[n] * (p - anchor[n]).square()).sum() for n, p in params.items())
        return loss + importance * penalty / 2

    losses, report = descend(model, loss_fn, max_steps, lr, weight_decay=1e-4, probe=probe, guard=guard)
    with torch.no_grad(), eval_mode(model):
        done = _done(model(x), wanted, relabel)
    return len(losses), done, report


@register(
    "l2ul",
    "misclassify forget instances, anchored by adversarial examples and MAS importance (Cha et al.)",
    scope="instance",
    needs=("forget",),
    controls=("lr", "max_steps", "importance"),
)
def l2ul(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Optional[Samples],
    forget_classes: Optional[list[int]],
    seed: int,
    n_adv: PositiveInt = 20,
    eps: Optional[Positive] = None,
    pgd_steps: PositiveInt = 100,
    lr: Positive = 1e-3,
    importance: NonNegative = 1.0,
    max_steps: PositiveInt = 200,
    variant: Literal["misclassify", "relabel"] = "misclassify",
    relabel_to: Optional[Union[torch.Tensor, np.ndarray, Sequence[int]]] = None,
    bounds: Optional[Sequence[float]] = None,
    guard: bool = True,
) -> dict:
    """Unlearns from `forget` alone; retained data, when given, serves only
    as the guard's probe (without it the guard catches only non-finite
    steps). Paper defaults: 20 adversarial examples per instance, 100 PGD
    steps, lr 1e-3, lambda (`importance`) 1. Only the adversarial examples the original model
    assigns to their target class are kept (the paper's CIFAR attacks all
    succeed; a missed one would teach a wrong label for the instance itself).
    `eps` defaults to 0.15 times the mean L2 norm of the forget inputs (the
    paper's 4.0 on CIFAR images in [0, 1] is about that fraction), the PGD
    step to eps / 40 (0.1 at eps 4), and `bounds` to the forget inputs' min
    and max. SGD (momentum 0.9, weight decay 1e-4) runs full-batch in eval
    mode (BatchNorm statistics stay those of the training data) until every
    forget instance is misclassified (or carries its `relabel_to` label) or
    `max_steps` run out.

    Options:
        n_adv: targeted adversarial restarts per forget instance
        eps: L2 radius of the adversarial examples (None: 0.15 x the mean forget-input norm)
        pgd_steps: PGD steps per adversarial example
        lr: SGD learning rate (momentum 0.9, weight decay 1e-4)
        importance: lambda, the weight of the MAS penalty that keeps important weights in place
        max_steps: most SGD steps
        variant: "misclassify" pushes instances off their labels, "relabel" onto `relabel_to`
        relabel_to: the new label of each forget instance (variant "relabel")
        bounds: (min, max) input range the adversarial examples are clamped to (None: the forget inputs')
        guard: on divergence or a fall of retained accuracy over 5 points, resume at half the lr (3 times, then stop)
    """
    forget = materialise(forget)  # full-batch steps on every forget instance: held in memory by design
    _check_relabel(variant, relabel_to, forget)
    timer = StageTimer()
    x, y = forget.inputs, forget.labels
    gen = torch.Generator().manual_seed(seed)
    eps = float(0.15 * x.flatten(1).norm(dim=1).mean()) if eps is None else eps
    bounds = (float(x.min()), float(x.max())) if bounds is None else bounds
    with timer("adversarial"):
        x_adv, targets, pgd_success = adversarial_anchors(model, x, y, n_adv, eps, pgd_steps, bounds, gen)
        with eval_mode(model):
            weights = mas_penalty_weights(model, x)
    wanted = torch.as_tensor(relabel_to).to(y.device) if variant == "relabel" else y
    with timer("unlearn"):
        steps, done, guarded = unlearn_instances(
            model,
            x,
            wanted,
            (x_adv, targets),
            weights,
            relabel=variant == "relabel",
            lr=lr,
            importance=importance,
            max_steps=max_steps,
            probe=guard_probe(retain, seed),
            guard=guard,
        )
    with torch.no_grad(), eval_mode(model):
        forget_accuracy = float((model(x).argmax(1) == y).double().mean())
    return {
        "variant": variant,
        "steps": steps,
        "reached": done,
        "forget_accuracy": forget_accuracy,
        "adversarial_examples": len(x_adv),
        "pgd_success": pgd_success,
        "eps": eps,
        "guard": guarded,
        "timings": timer.seconds,
    }
