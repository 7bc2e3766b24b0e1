"""One-shot class forgetting with mnemonic codes (Yamashita et al., ACML 2024).

The model was trained with `MnemonicCodes` mixed in, so it classifies the
class codes. The codes then stand in for the data: the diagonal Fisher
information of the forget classes' codes over that of the retain classes'
codes says which weights serve the forget classes, and one step along that
ratio, scaled per tensor, breaks them. No training data is needed.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .._core import NonNegative, Positive, Samples, Split, eval_mode, model_device, output_classes, validate_classes
from ..curvature import diagonal_fisher
from ..mnemonic_codes import MnemonicCodes, code_split
from .registry import register


def fisher_ratio(f_forget: torch.Tensor, f_retain: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """eta = (f_F + floor) / (f_R + floor) computed as exp(log - log), so tiny
    Fisher values neither underflow nor overflow in between. Where it is still
    undefined, 0/0 gives 0 and x/0 the largest finite ratio of the tensor (0
    if there is none); 0/x is 0, so weights the forget codes do not use never
    move (the published code sends them to the largest ratio instead)."""
    eta = torch.exp(torch.log(f_forget.double() + floor) - torch.log(f_retain.double() + floor))
    eta = torch.nan_to_num(eta, nan=0.0, posinf=float("inf"))
    finite = eta[torch.isfinite(eta)]
    largest = float(finite.max()) if finite.numel() else 0.0
    return torch.where(torch.isinf(eta), torch.full_like(eta, largest), eta)


def step_sizes(etas: dict[str, torch.Tensor], lambda1: float, lambda2: float) -> dict[str, float]:
    """alpha_l = min(lambda1, lambda2 / max eta_l) per tensor: no weight moves
    by more than lambda2, and none by more than lambda1 times its ratio."""
    sizes = {}
    for name, eta in etas.items():
        top = float(eta.max())
        sizes[name] = lambda1 if top <= 0 else min(lambda1, lambda2 / top)
    return sizes


def _code_scores(model: nn.Module, codes: Split, forget_classes: list[int]) -> tuple[float, float]:
    """(1 - forget accuracy) + retain accuracy on the codes, and the forget
    codes' mean loss minus the retain codes' (the tie-break)."""
    with torch.no_grad(), eval_mode(model):
        logits = model(codes.inputs)
    losses = F.cross_entropy(logits, codes.labels, reduction="none")
    correct = (logits.argmax(1) == codes.labels).double()
    gone = torch.isin(codes.labels, torch.tensor(forget_classes, device=codes.labels.device))
    score = (1 - float(correct[gone].mean())) + float(correct[~gone].mean())
    return score, float(losses[gone].mean() - losses[~gone].mean())


@register(
    "mnemonic",
    "one-shot class forgetting from mnemonic codes (no data; model trained with codes)",
    scope="class",
    needs=("mnemonic_codes",),
    controls=("lambda1", "lambda2"),
)
def mnemonic(
    model: nn.Module,
    *,
    forget: Optional[Samples],
    retain: Optional[Samples],
    forget_classes: Optional[list[int]],
    seed: int,
    codes: Union[MnemonicCodes, torch.Tensor, None] = None,
    lambda1: Positive = 1e-3,
    lambda2: Positive = 10.0,
    fisher_floor: NonNegative = 1e-16,
) -> dict[str, Any]:
    """Needs `codes` (the MnemonicCodes the model was trained with, or their
    (classes, *input shape) tensor) and no data; `forget`/`retain` are not
    used. Steps: diagonal Fisher of the forget codes (f_F) and of the other
    codes (f_R), one vectorised per-sample-gradient pass each; eta = f_F / f_R;
    per tensor alpha = min(lambda1, lambda2 / max eta); keep whichever of
    w + alpha eta and w - alpha eta scores higher on the codes
    ((1 - forget accuracy) + retain accuracy; ties go to the larger loss gap).
    `fisher_floor` is added to both Fisher values, as the published code
    starts its sums at 1e-16: a weight that only the forget codes use gets a
    ratio of about f_F / floor, which takes the largest step, and the rest
    scale down from it. Defaults are the paper's MNIST values; it used
    (1e-5, 1e4) on CIFAR.

    Options:
        codes: the MnemonicCodes the model was trained with, or their (classes, *input shape) tensor
        lambda1: largest step size alpha of any tensor
        lambda2: largest change of any single weight
        fisher_floor: added to both Fisher values before their ratio
    """
    split, forget_classes = _code_request(model, codes, forget_classes)
    etas = _fisher_ratios(model, split, forget_classes, fisher_floor)
    alphas = step_sizes(etas, lambda1, lambda2)
    sign, candidates = _step_with_best_sign(model, split, forget_classes, etas, alphas)
    largest = max(alphas[name] * float(eta.max()) for name, eta in etas.items())
    return {
        "lambda1": lambda1,
        "lambda2": lambda2,
        "fisher_floor": fisher_floor,
        "sign": "+" if sign > 0 else "-",
        "code_score_plus": candidates[1.0][0],
        "code_score_minus": candidates[-1.0][0],
        "largest_change": largest,
    }


def _code_request(
    model: nn.Module, codes: Union[MnemonicCodes, torch.Tensor], forget_classes: Optional[list[int]]
) -> tuple[Split, list[int]]:
    """The codes as a Split on the model's device (one per class), and the checked forget classes."""
    split = code_split(codes)
    split = Split(split.inputs.to(model_device(model)), split.labels.to(model_device(model)))
    classes = output_classes(model, split.inputs, "codes")
    if classes != len(split):
        raise ValueError(f"codes: the model has {classes} classes but there are {len(split)} codes")
    return split, validate_classes(forget_classes or [], classes)


def _fisher_ratios(model: nn.Module, codes: Split, forget_classes: list[int], floor: float) -> dict[str, torch.Tensor]:
    """eta per parameter tensor: the forget codes' diagonal Fisher over the other codes'."""
    gone = torch.isin(codes.labels, torch.tensor(forget_classes, device=codes.labels.device))
    with eval_mode(model):
        f_forget = diagonal_fisher(model, Split(codes.inputs[gone], codes.labels[gone]))
        f_retain = diagonal_fisher(model, Split(codes.inputs[~gone], codes.labels[~gone]))
    return {name: fisher_ratio(f_forget[name], f_retain[name], floor) for name in f_forget}


def _step_with_best_sign(
    model: nn.Module,
    codes: Split,
    forget_classes: list[int],
    etas: dict[str, torch.Tensor],
    alphas: dict[str, float],
) -> tuple[float, dict[float, tuple[float, float]]]:
    """Tries w + alpha eta and w - alpha eta, keeps the one that scores
    higher on the codes; returns the sign kept and both scores."""
    params = dict(model.named_parameters())
    original = {name: params[name].detach().clone() for name in etas}

    @torch.no_grad()
    def step(sign: float) -> None:
        """The weights become w + sign * alpha * eta, from the original w."""
        for name, eta in etas.items():
            params[name].copy_(original[name] + (sign * alphas[name] * eta).to(original[name].dtype))

    candidates = {}
    for sign in (1.0, -1.0):
        step(sign)
        candidates[sign] = _code_scores(model, codes, forget_classes)
    sign = max(candidates, key=lambda s: (candidates[s][0], candidates[s][1], s))
    step(sign)
    return sign, candidates
