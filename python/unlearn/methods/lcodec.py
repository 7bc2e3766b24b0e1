"""L-CODEC (Mehta, Pal, Singh, Ravi; CVPR 2022): forget samples with a noisy
Newton step restricted to the parameter blocks that FOCI finds in the
activations of perturbed copies of the samples."""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Any, Callable, Literal, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import curvature as curv
from .. import distributed, ops
from .._core import (
    NonNegative,
    NonNegativeInt,
    OpenFraction,
    Positive,
    PositiveInt,
    Range,
    Samples,
    Split,
    StageTimer,
    materialise,
)
from ..stats import foci
from ..units import Selection, Units, inference_batch
from .registry import register

RELATIVE_DAMPING = 1.0
"""The default damping is l2 plus this multiple of the mean diagonal of H_SS
(`default_damping`; Levenberg-Marquardt's scaling). A damping relative to
the curvature keeps the step the same when the loss is rescaled, and on a
confident model, whose gradient and curvature both nearly vanish, it is as
small as they are; an absolute one (the l2 it used to default to) then
swamps the curvature, and the step -(l2 I)^-1 (l2 w_S) zeroes the blocks.
A whole mean diagonal rather than a fraction: a curvature estimated on
`curvature_samples` samples has a null space wherever there are more
parameters than its rank, and there only the damping bounds the step; on the
digits models smaller fractions gave longer steps whose gain the retained
gradient did not confirm."""

NOISE_RATIO = 10.0
"""noise="auto" adds the (epsilon, delta) noise only when its standard
deviation is at most this many times the per-coordinate RMS of the accepted
step; larger noise would bury the step it is meant to mask."""

CPU_BATCH_BYTES = 16 << 20
"""On the CPU the perturbed copies go through the model in batches of at
most about this many bytes, whatever `memory_budget` allows: batches that
stay in the caches (on the digits CNN, 10 samples x 1000 copies took 0.09 s
in 16 MiB batches against 0.23 s in one 256 MiB batch)."""

NoiseMode = Literal["auto", "certified", "off"]
Curvature = Union[torch.Tensor, curv.KroneckerFactor]
SOLVE_RESIDUAL = 1e-6
"""Relative residual past which a conjugate-gradient solve is reported as
unconverged (a warning): the damping was too small for the curvature."""


def log_odds(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log sum_{j != y} exp(z_j) - z_y of each row, in float64: the per-copy
    response FOCI explains. Cross-entropy is softplus of it, strictly
    increasing, so both rank the copies alike (FOCI reads only ranks). But a
    confident model's cross-entropy, log(1 + tiny), is rounded near 0 in steps
    of the dtype's epsilon and is exactly 0 past a logit margin of about 17 in
    float32 (about 37 in float64), so the copies tie; the log-odds is about
    minus the margin, its differences kept at any confidence."""
    z = logits.double()
    rows = labels[:, None]
    return z.scatter(1, rows, -math.inf).logsumexp(dim=1) - z.gather(1, rows)[:, 0]


def perturbation_features(
    model: nn.Module,
    units: Units,
    forget: Split,
    copies: int,
    sigma: float,
    seed: int,
    memory_budget: int,
    group: Optional[Any] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-copy loss log-odds (k*copies, float64; `log_odds`) and unit mean
    activations (k*copies x units, in the inputs' dtype): all copies of all
    forget samples, forwarded in batches under the budget. With a process
    `group`, each rank forwards one contiguous block of the copies and the
    blocks are gathered on every rank."""
    k = len(forget)
    noisy = ops.perturb(forget.inputs, copies, sigma, seed=seed)  # (copies, k, ...)
    noisy = noisy.transpose(0, 1).reshape(k * copies, *forget.inputs.shape[1:])
    labels = forget.labels.repeat_interleave(copies)
    first, last = (0, k * copies) if group is None else distributed.shard_rows(k * copies, group)
    features = torch.empty(last - first, units.columns, dtype=noisy.dtype, device=noisy.device)
    responses = torch.empty(last - first, dtype=torch.float64, device=noisy.device)
    budget = min(memory_budget, CPU_BATCH_BYTES) if noisy.device.type == "cpu" else memory_budget
    batch = inference_batch(model, noisy[0], budget, k * copies)
    with torch.no_grad():
        for start in range(0, last - first, batch):
            end = min(last - first, start + batch)
            with units.record(features[start:end]):
                out = model(noisy[first + start : first + end])
            responses[start:end] = log_odds(out, labels[first + start : first + end])
    if group is not None:
        responses = distributed.gather_rows(responses, k * copies, group)
        features = distributed.gather_rows(features, k * copies, group)
    return responses, features


def check_responses(responses: torch.Tensor, copies: int, forget: Split, sigma: float) -> None:
    """Raises ValueError naming the first forget sample whose copies give a NaN
    response or all the same one: FOCI has nothing to explain there."""
    rows = responses.view(-1, copies)
    undefined = rows.isnan().any(dim=1)
    constant = ~(rows.amax(dim=1) > rows.amin(dim=1))
    bad = (undefined | constant).nonzero()
    if len(bad) == 0:
        return
    i = int(bad[0])
    if undefined[i]:
        raise ValueError(f"forget sample {i}: the model's outputs on some of its perturbed copies are not finite")
    scale = float(forget.inputs[i].abs().max())
    raise ValueError(
        f"forget sample {i}: its loss is the same on all {copies} perturbed copies, even compared at float64 "
        f"precision, so FOCI has no change to explain: the model's output does not respond to noise of "
        f"sigma = {sigma:g} on this input (largest |x| = {scale:.3g}). A larger sigma helps only where that noise "
        "is too small for the input's scale (lost to rounding, or within a region where the output is flat); "
        "a model that ignores this input gives the same loss for any sigma (selection='all' needs no FOCI)"
    )


def select_columns(
    responses: torch.Tensor,
    features: torch.Tensor,
    copies: int,
    selection: str,
    max_select: Optional[int],
    seed: int,
    group: Optional[Any] = None,
) -> list[list[int]]:
    """Columns picked for each forget sample from its own copies (FOCI shared
    by the ranks of `group` when one is given); FOCI needs each sample's
    responses to vary (`check_responses`)."""
    picks = []
    for i in range(responses.shape[0] // copies):
        if selection == "all":
            picks.append(list(range(features.shape[1])))
            continue
        y = responses[i * copies : (i + 1) * copies]
        f = features[i * copies : (i + 1) * copies]
        chosen = foci(y, f, max_select=max_select, seed=seed + i, group=group).selected
        if selection == "random":
            g = torch.Generator().manual_seed(seed + i)
            chosen = torch.randperm(f.shape[1], generator=g)[: len(chosen)].tolist()
        picks.append(chosen)
    return picks


def noise_scale(
    removed: int, n: int, l2: float, epsilon: float, delta: float, smoothness: float, lipschitz: float
) -> float:
    """sigma = (gamma / epsilon) sqrt(2 ln(1.25 / delta)), gamma = 2 M L^2 m^2 / (n^2 lambda^3);
    inf where lambda^3 or epsilon underflows (the bound says nothing there)."""
    if smoothness * lipschitz == 0:
        return 0.0
    try:
        return (
            2
            * smoothness
            * lipschitz**2
            * removed**2
            / (n**2 * l2**3)
            / epsilon
            * math.sqrt(2 * math.log(1.25 / delta))
        )
    except (ZeroDivisionError, OverflowError):
        return math.inf


def retained_gradient(
    model: nn.Module,
    chosen: Selection,
    forget: Split,
    retain: Samples,
    gradient: str,
    l2: float,
    n: int,
    max_bytes: int,
) -> torch.Tensor:
    """grad_S of the retained objective (with the l2 term), from the retained
    data or, with gradient="forget", from the forget data alone (batches
    that fit in `max_bytes`)."""
    weights = chosen.gather({name: p.detach() for name, p in model.named_parameters()})
    if gradient == "retain":
        return curv.mean_gradient(model, chosen, retain, max_bytes=max_bytes) + l2 * weights
    k = len(forget)
    return -(curv.mean_gradient(model, chosen, forget, max_bytes=max_bytes) * k + k * l2 * weights) / (n - k)


def curvature_factor(
    model: nn.Module,
    chosen: Selection,
    retain: Samples,
    *,
    curvature: str,
    fisher: str,
    samples: int,
    checkpoints: Optional[Sequence[dict]],
    seed: int,
    max_bytes: int,
) -> tuple[Curvature, str]:
    """The curvature of the selected blocks on the retained data, and its
    kind: a low-rank "factor" U (H = U^T U / rows), a dense positive
    semidefinite "gram" matrix, a dense, possibly indefinite, "hessian", or
    for the expected Fisher of Linear layers alone, where the dense matrix
    would fit in `max_bytes`, a "kronecker" `curv.KroneckerFactor` (solved by
    conjugate gradients, never formed). Its passes take batches that fit in
    `max_bytes` too."""
    if curvature == "fd":
        return curv.finite_difference_factor(model, chosen, retain, checkpoints, max_bytes), "factor"
    gen = torch.Generator().manual_seed(seed)
    subset = retain.sample(samples, gen)
    if curvature == "exact":
        return curv.exact_hessian(model, chosen, subset, max_bytes=max_bytes), "hessian"
    if fisher == "expected":
        # Where the dense matrix fits, its Kronecker parts give the same step for less;
        # where it does not, a factor of as many rows as fit stays cheaper than CG steps.
        fits = curv.dense_fits(chosen.size(model), max_bytes)
        kronecker = curv.kronecker_factor(model, chosen, subset, max_bytes) if fits else None
        if kronecker is not None:
            return kronecker, "kronecker"
        block, low_rank = curv.expected_fisher(model, chosen, subset, max_bytes)
        return block, "factor" if low_rank else "gram"
    if fisher == "model":  # labels drawn from the model: an unbiased Gauss-Newton estimate
        batch = inference_batch(model, subset.inputs[0], max_bytes, len(subset))
        with torch.no_grad():
            probs = torch.cat([torch.softmax(model(x), dim=1) for x, _ in subset.batches(batch)])
        drawn = torch.multinomial(probs.cpu().double(), 1, generator=gen)[:, 0].to(subset.labels.device)
        subset = Split(subset.inputs, drawn)
    return curv.per_sample_gradients(model, chosen, subset, max_bytes=max_bytes), "factor"


def default_damping(block: Curvature, kind: str, l2: float) -> float:
    """max(l2, -lowest eigenvalue of H_SS) plus RELATIVE_DAMPING times its
    mean absolute eigenvalue: l2 plus a fraction of the mean diagonal for a
    factor U (H = U^T U / rows) or a Gram matrix (never indefinite); a dense
    (exact) Hessian of a non-convex loss is first lifted to be positive
    semidefinite."""
    if kind == "factor":
        lowest, scale = 0.0, _square_sum(block) / block.numel()
    elif kind in ("gram", "kronecker"):
        lowest, scale = 0.0, float(block.diagonal().double().mean())
    else:
        eigenvalues = torch.linalg.eigvalsh(block.double())
        lowest, scale = float(eigenvalues[0]), float(eigenvalues.abs().mean())
    damping = max(l2, -lowest) + RELATIVE_DAMPING * scale
    if damping == 0:
        raise ValueError(
            "damping: the curvature of the selected blocks is 0 on the retained samples and l2 = 0, so the "
            "default damping (relative to the curvature) is 0; pass damping > 0"
        )
    return damping


def _square_sum(t: torch.Tensor) -> float:
    """The sum of the squares of t's entries in float64, a few MiB of rows at
    a time: a float64 copy of a factor sized to the memory budget, and its
    square, would take four times the budget."""
    rows = max(1, (1 << 20) // max(1, t[0].numel()))
    return sum(float(part.double().square().sum()) for part in t.split(rows))


def trust_factor(step: torch.Tensor, weights: torch.Tensor, radius: Optional[float]) -> float:
    """The factor (at most 1) that shortens `step` to `radius` times the norm
    of the selected weights, so that a near-singular solve can neither zero
    the blocks nor blow them up (1 with no radius)."""
    norm = float(step.norm())
    if radius is None or norm == 0:
        return 1.0
    return min(1.0, radius * float(weights.double().norm()) / norm)


def retained_objective(
    model: nn.Module, chosen: Selection, sample: Split, l2: float, max_bytes: int
) -> tuple[float, Callable[[torch.Tensor], float]]:
    """The retained objective (mean CE on `sample`, plus l2/2 ||w||^2) at the
    current weights, and change(delta): how much it moves when w_S moves by
    delta (the model itself unchanged). The CE is taken in float64 from the
    logits, and the change is formed from differences, so that a confident
    model's near-zero loss still compares. Batches of at most 512 that fit in
    `max_bytes`."""
    forward, v = curv.restricted_forward(model, chosen)
    batch_size = inference_batch(model, sample.inputs[0], max_bytes, 512)

    def cross_entropy(w: torch.Tensor) -> float:
        with torch.no_grad():
            total = sum(
                float(F.cross_entropy(forward(w, x).double(), y, reduction="sum"))
                for x, y in sample.batches(batch_size)
            )
        return total / len(sample)

    base = cross_entropy(v)
    squares = sum(float(p.detach().double().square().sum()) for p in model.parameters())

    def change(delta: torch.Tensor) -> float:
        moved = v + delta.to(v.dtype)
        d = (moved - v).double()
        return cross_entropy(moved) - base + l2 * (float(v.double() @ d) + float(d @ d) / 2)

    return base + l2 / 2 * squares, change


def backtrack(
    change: Callable[[torch.Tensor], float], step: torch.Tensor, trials: Optional[int], allowed: float
) -> tuple[float, int, float]:
    """The first scale t of 1, 1/2, 1/4, ... (`trials` of them) at which the
    step raises the retained objective by at most `allowed`, the trials made
    and the objective's change there; t = 0 (no change) when none qualifies,
    t = 1 unchecked with no `trials`. A bound on the rise rather than
    Armijo's decrease: the removal step is a descent step for the retained
    objective only at a stationary point of the training objective, and a
    model stopped short of one (as most are) sees its retained objective rise
    a little as the forget samples' influence goes."""
    if trials is None:
        return 1.0, 0, change(step)
    for trial in range(trials):
        t = 0.5**trial
        moved = change(t * step)
        if moved <= allowed:
            return t, trial + 1, moved
    return 0.0, trials, 0.0


def searched_step(
    model: nn.Module,
    chosen: Selection,
    retain: Samples,
    step: torch.Tensor,
    *,
    l2: float,
    trials: Optional[int],
    samples: int,
    slack: float,
    seed: int,
    max_bytes: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """`step` scaled by `backtrack` on the retained objective of `samples`
    retained samples (seeded), allowed to rise by `slack` times its value,
    with a warning when no scale qualifies; and what the search found."""
    sample = retain.sample(samples, torch.Generator().manual_seed(seed))
    objective, change = retained_objective(model, chosen, sample, l2, max_bytes)
    scale, made, moved = backtrack(change, step, trials, slack * objective)
    if scale == 0:
        warnings.warn(
            f"lcodec: the retained objective rose by more than {slack:g} x its value at each of the {made} step "
            f"scales 1 to 1/{2 ** (made - 1)}, so the selected blocks were left unchanged (report['line_search']; "
            "line_search_slack sets the rise allowed)",
            stacklevel=3,
        )
    search = {
        "scale": scale,
        "trials": made,
        "samples": len(sample),
        "slack": slack,
        "objective_before": objective,
        "objective_after": objective + moved,
    }
    return scale * step, search


def noise_mode(noise: Union[bool, str]) -> str:
    """The noise setting as a mode: True (the former default) adds the
    noise whatever its size, as "certified" does; False is "off"."""
    if isinstance(noise, bool):
        return "certified" if noise else "off"
    return noise


def noise_refusal(sigma: float, step: torch.Tensor, privacy: dict[str, Any]) -> Optional[str]:
    """Why noise="auto" leaves out noise of std `sigma` after `step` (None
    when it adds it): the scale is unbounded, or more than NOISE_RATIO times
    the step's per-coordinate RMS (`privacy`: the arguments of `noise_scale`)."""
    noise = f"the (epsilon, delta) = ({privacy['epsilon']:g}, {privacy['delta']:g}) noise for n_train = {privacy['n']}"
    if not math.isfinite(sigma):
        return (
            f"with l2 = {privacy['l2']:g} {noise} has no finite scale (the guarantee assumes an l2-strongly convex "
            "objective: pass the training weight decay as l2)"
        )
    rms = float(step.norm()) / math.sqrt(step.numel()) if step.numel() else 0.0
    if sigma <= NOISE_RATIO * rms:
        return None
    return (
        f"{noise} has std {sigma:.3g}, more than {NOISE_RATIO:g} times the step's per-coordinate RMS "
        f"{rms:.3g}: it would bury the step"
    )


def apply_noise(
    model: nn.Module,
    chosen: Optional[Selection],
    step: torch.Tensor,
    mode: str,
    target: str,
    seed: int,
    privacy: dict[str, Any],
) -> dict[str, Any]:
    """Adds the (epsilon, delta) noise as `mode` says (`privacy`: the
    arguments of `noise_scale`), warning when "auto" leaves it out; returns
    what was done."""
    sigma = noise_scale(**privacy) if mode != "off" else 0.0
    reason = None
    if mode == "off":
        reason = "noise='off'"
    elif chosen is None:
        reason = "no blocks were selected"
    elif mode == "auto":
        reason = noise_refusal(sigma, step, privacy)
        if reason is not None:
            warnings.warn(
                f"lcodec: {reason}, so it was not added and the result carries no (epsilon, delta) guarantee; "
                "pass noise='certified' to add it anyway, or noise='off' not to be told",
                stacklevel=3,
            )
    if reason is None:
        _add_noise(model, chosen, sigma, target, seed)
    return {"mode": mode, "sigma": sigma, "added": reason is None, "reason": reason, "on": target}


@register(
    "lcodec",
    "L-CODEC: noisy Newton step on FOCI-selected parameter blocks (Mehta et al. 2022)",
    scope="instance",
    needs=("forget", "retain"),
    controls=("trust_radius", "damping", "l2", "noise"),
)
def lcodec(
    model: nn.Module,
    *,
    forget: Samples,
    retain: Samples,
    forget_classes: Optional[list[int]],
    seed: int,
    perturbations: Annotated[int, Range(2)] = 1000,
    sigma: Positive = 0.1,
    selection: Literal["foci", "all", "random"] = "foci",
    max_select: Optional[PositiveInt] = None,
    curvature: Literal["fisher", "exact", "fd"] = "fisher",
    gradient: Literal["forget", "retain"] = "forget",
    curvature_samples: PositiveInt = 1024,
    checkpoints: Optional[Sequence[dict]] = None,
    l2: NonNegative = 0.0,
    damping: Optional[Positive] = None,
    fisher: Literal["expected", "model", "empirical"] = "expected",
    trust_radius: Optional[Positive] = 0.05,
    line_search: Optional[PositiveInt] = 10,
    line_search_samples: PositiveInt = 1024,
    line_search_slack: NonNegative = 0.05,
    n_train: Optional[PositiveInt] = None,
    noise: Union[NoiseMode, bool] = "auto",
    noise_on: Literal["selected", "complement"] = "selected",
    epsilon: Positive = 0.1,
    delta: OpenFraction = 0.01,
    smoothness: NonNegative = 0.25,
    lipschitz: NonNegative = 1.0,
    memory_budget: NonNegativeInt = curv.MAX_BYTES,
    group: Optional[Any] = None,
) -> dict:
    """Removes the forget samples' influence from the selected blocks S by a
    Newton step on the retained objective L_R = mean retained CE + l2/2 ||w||^2:
    w_S -= t (H_SS + damping I)^-1 g_S, H_SS the curvature of the mean
    retained loss (by default the Gauss-Newton matrix with the expectation
    over the model's labels, `curv.expected_fisher`, or for Linear layers
    alone `curv.KroneckerFactor`, solved by conjugate gradients), the step first
    shortened to `trust_radius` ||w_S|| and t the first of 1, 1/2, 1/4, ... at
    which L_R (on at most `line_search_samples` retained samples, seeded)
    rises by at most `line_search_slack` times its value, or 0 when none of
    `line_search` scales qualifies. l2 defaults to 0, the retained
    cross-entropy alone: pass the weight decay the model was trained with.
    g_S is the paper's -(1/(n - k)) sum_f grad_S (CE_f + l2/2 ||w||^2), n the
    training-set size and k the number of forget samples (`gradient="forget"`,
    default): the forget samples' influence alone, equal to grad_S L_R when
    the model is a stationary point of the full objective. `gradient="retain"`
    takes grad_S L_R itself, which on a model stopped short of that point also
    goes on training it on the retained data, lowering the forget losses
    too. Then Gaussian noise of the (epsilon, delta) scale on the
    selected coordinates (the published code; `noise_on="complement"` follows
    the paper's Algorithm 1): "certified" always adds it, "auto" only when its
    std is at most NOISE_RATIO times the accepted step's per-coordinate RMS
    (otherwise it warns, and the report says why), "off" never. With a
    torch.distributed process `group` (every rank calling with the same
    arguments), the perturbed copies and FOCI are shared among its ranks and
    every rank gets the same result as one process.

    Options:
        perturbations: perturbed copies of each forget sample that FOCI selects from
        sigma: standard deviation of the input perturbations
        selection: "foci" (the method), "all" units, or as many "random" units as FOCI picks
        max_select: most units FOCI picks per forget sample (None: until it stops)
        curvature: "fisher" (Gauss-Newton), "exact" Hessian, or "fd" (finite differences of two checkpoints)
        gradient: "retain" (retained-data gradient) or "forget" (the paper's forget-data form)
        curvature_samples: retained samples the curvature is estimated on
        checkpoints: (previous, last) state dicts of training, for curvature="fd"
        l2: the l2 regularisation (weight decay) the model was trained with (0: the retained CE alone)
        damping: added to the curvature's diagonal (None: l2 + RELATIVE_DAMPING x its mean diagonal; default_damping)
        fisher: labels "expected" under the model (C rows a sample), drawn from the "model", or the data's ("empirical")
        trust_radius: longest step, as a fraction of ||w_S|| (None: the Newton step's own length)
        line_search: step scales 1, 1/2, ... tried against the retained objective (None: t = 1 unchecked)
        line_search_samples: retained samples (seeded) the line search evaluates the objective on
        line_search_slack: rise of the retained objective the line search accepts, as a fraction of its value
        n_train: training-set size (None: retained plus forget samples)
        noise: "auto", "certified" or "off" (True: "certified", False: "off"); see above
        noise_on: noise on the "selected" coordinates or their "complement"
        epsilon: privacy epsilon of the noise
        delta: privacy delta of the noise
        smoothness: smoothness constant M of the loss, in the noise scale
        lipschitz: Lipschitz constant L of the loss, in the noise scale
        memory_budget: bytes a batch of any pass may use, forget()'s checks too (estimated; CPU copies: CPU_BATCH_BYTES)
        group: torch.distributed process group sharing the work (None: one process)
    """
    if curvature == "fd" and (checkpoints is None or len(checkpoints) != 2):
        raise ValueError("checkpoints: curvature='fd' needs two state dicts (previous, last) of the training run")
    mode = noise_mode(noise)
    forget = materialise(forget)  # perturbed copies of every forget sample: held in memory by design
    k = len(forget)
    n = n_train if n_train is not None else len(retain) + k
    if n <= k:
        raise ValueError(f"n_train must exceed the number of forget samples ({k}), got {n}")
    privacy = dict(removed=k, n=n, l2=l2, epsilon=epsilon, delta=delta, smoothness=smoothness, lipschitz=lipschitz)
    if mode == "certified" and not math.isfinite(noise_scale(**privacy)):
        raise ValueError(
            f"l2: with l2 = {l2:g} and epsilon = {epsilon:g} the (epsilon, delta) noise scale 2 M L^2 m^2 / "
            "(n^2 l2^3 epsilon) is not finite; pass the l2 (weight decay) the model was trained with, "
            "or noise='auto' or 'off'"
        )
    timer = StageTimer()
    model.eval()
    units = Units(model)
    with timer("perturb_forward"):
        responses, features = perturbation_features(
            model, units, forget, perturbations, sigma, seed, memory_budget, group
        )
    with timer("select"):
        if selection != "all":
            check_responses(responses, perturbations, forget, sigma)
        picks = select_columns(responses, features, perturbations, selection, max_select, seed, group)
    columns = sorted({c for p in picks for c in p})
    report = {
        "selection": selection,
        "curvature": curvature,
        "gradient": gradient,
        "per_sample_columns": picks,
        "selected_blocks": [(units.unit(c)[0].name, units.unit(c)[1]) for c in columns],
        "units_total": units.columns,
        "n_train": n,
    }
    if not columns:
        noise_report = apply_noise(model, None, torch.zeros(0), mode, noise_on, seed, privacy)
        report.update(selected_params=0, step_norm=0.0, noise=noise_report, timings=timer.seconds)
        return report

    chosen = Selection.from_columns(units, columns)
    with timer("gradient"):
        g = retained_gradient(model, chosen, forget, retain, gradient, l2, n, memory_budget)
    with timer("curvature"):
        block, kind = curvature_factor(
            model,
            chosen,
            retain,
            curvature=curvature,
            fisher=fisher,
            samples=curvature_samples,
            checkpoints=checkpoints,
            seed=seed,
            max_bytes=memory_budget,
        )
    with timer("solve"):
        damping = default_damping(block, kind, l2) if damping is None else damping
        if kind == "kronecker":
            solution, solve = block.solve(g.double(), damping)
            newton, report["conjugate_gradients"] = -solution, solve
            if solve["residual"] > SOLVE_RESIDUAL:
                warnings.warn(
                    f"lcodec: conjugate gradients stopped at a relative residual of {solve['residual']:.1e} after "
                    f"{solve['steps']} steps: damping = {damping:g} is small for this curvature (None: relative to it)",
                    stacklevel=2,
                )
        else:
            # A float32 curvature factor keeps its dtype: block_solve forms its Gram
            # matrix in float32 (as accurate as the factor) and solves in float64.
            newton = -ops.block_solve([block], g.double(), damping, [kind == "factor"])
        weights = chosen.gather({name: p.detach() for name, p in model.named_parameters()})
        trust = trust_factor(newton, weights, trust_radius)
    with timer("line_search"):
        step, search = searched_step(
            model,
            chosen,
            retain,
            trust * newton,
            l2=l2,
            trials=line_search,
            samples=line_search_samples,
            slack=line_search_slack,
            seed=seed,
            max_bytes=memory_budget,
        )
        chosen.scatter_add(model, step)
    with timer("noise"):
        noise_report = apply_noise(model, chosen, step, mode, noise_on, seed, privacy)
    report.update(
        selected_params=int(step.numel()),
        damping=damping,
        newton_norm=float(newton.norm()),
        trust_factor=trust,
        step_norm=float(step.norm()),
        line_search=search,
        noise=noise_report,
        timings=timer.seconds,
    )
    return report


def _add_noise(model: nn.Module, chosen: Selection, scale: float, target: str, seed: int) -> None:
    """Seeded Gaussian noise of std `scale` on the selected coordinates, or on
    every other coordinate."""
    gen = torch.Generator().manual_seed(seed + 1)
    if target == "selected":
        chosen.scatter_add(model, scale * torch.randn(chosen.size(model), generator=gen, dtype=torch.float64))
        return
    params = dict(model.named_parameters())
    mask = {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}
    for name, rows in chosen.parameters():
        mask[name][rows.to(params[name].device)] = False
    with torch.no_grad():
        for name, p in params.items():
            e = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
            p.add_(scale * e * mask[name])
