"""Many models of one architecture trained at once, each as `training.fit`
would train it alone.

The per-example evaluation (`unlearn.audit`) needs N originals and N retrained
references. Training them one after the other costs N trainings; here the N
models' parameters are stacked (`torch.func.stack_module_state`) and one
`vmap`-ed forward and backward pass serves all of them per step. Each model
keeps its own seed: its own initialisation, its own shuffling generator, its
own BatchNorm statistics, and the summed loss gives every model the gradient
of its own mean loss, so the optimiser's element-wise update is the one it
would get alone. The results equal one-at-a-time training up to float
rounding (batched kernels sum in another order), which grows slowly over
training; a model with random layers (dropout) cannot draw the masks it would
draw alone, so such models are trained one at a time instead.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import data
from ._core import PositiveInt, Split, batch_bounds, check_model, check_option, check_seed, model_device
from .mnemonic_codes import MnemonicCodes
from .training import (
    TRAINING_DEFAULTS,
    cache_path,
    check_settings,
    epoch_progress,
    fit,
    fresh,
    load_cached,
    recipe_optimizer,
    save,
)

# Layers that make batched training slower than one model at a time on the
# CPU: measured on two cores, 64 digits CNNs train in 0.5x to 0.7x the speed of
# one at a time when batched (the grouped convolutions' backward pass), while
# 64 logistic regressions or MLPs train 6x to 11x faster.
_CPU_ONE_AT_A_TIME = (nn.modules.conv._ConvNd,)

# Layers whose forward pass draws random numbers.
_RANDOM_LAYERS = (nn.modules.dropout._DropoutNd, nn.RReLU)


def has_random_layers(model: nn.Module) -> bool:
    """Whether a forward pass of `model` in training mode draws random numbers."""
    return any(isinstance(module, _RANDOM_LAYERS) for module in model.modules())


def batches(model: nn.Module, split: Split, count: int, group: Optional[int] = None) -> bool:
    """Whether `fit_ensemble` trains `count` models like `model` on `split`
    in batched passes (else one at a time with `fit`)."""
    if has_random_layers(model):
        return False
    if group is not None:
        return True
    on_cpu = not isinstance(split, Split) or split.inputs.device.type == "cpu"
    return count > 1 and not (on_cpu and any(isinstance(m, _CPU_ONE_AT_A_TIME) for m in model.modules()))


def _check_models(models: Sequence[nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    """The models, one architecture on one device, one seed each."""
    if isinstance(models, nn.Module) or not isinstance(models, (list, tuple)):
        raise TypeError(f"models must be a list of models, got {type(models).__name__}")
    if not models:
        raise ValueError("models is empty: give at least one model")
    models = [check_model(model, f"models[{i}]") for i, model in enumerate(models)]
    if not isinstance(seeds, (list, tuple, range)) or len(seeds) != len(models):
        raise ValueError(f"seeds must be a sequence with one seed per model ({len(models)})")
    for seed in seeds:
        check_seed(seed)
    first = models[0].state_dict()
    shapes = {name: tuple(value.shape) for name, value in first.items()}
    for i, model in enumerate(models[1:], 1):
        state = model.state_dict()
        if type(model) is not type(models[0]) or {k: tuple(v.shape) for k, v in state.items()} != shapes:
            raise ValueError(f"models[{i}] is not the architecture of models[0]: every model must have the same one")
        if model_device(model) != model_device(models[0]):
            raise ValueError(f"models[{i}] is on {model_device(model)}, models[0] on {model_device(models[0])}")
    return models


def fit_ensemble(
    models: Sequence[nn.Module],
    split: Split,
    *,
    seeds: Sequence[int],
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    mnemonic: Optional[MnemonicCodes] = None,
    progress: bool = False,
    group: Optional[int] = None,
) -> list[list[float]]:
    """Trains every model of `models` in place on `split`, model i as
    `fit(models[i], split, seed=seeds[i], ...)` would (same recipe, same
    arguments), `group` models at a time in one batched pass per step
    (default: all of them). Returns each model's mean training loss per
    epoch. Models with random layers are trained one at a time with `fit`;
    so is a single model unless `group` is given, and, by default, a
    convolutional model on the CPU, which batched training slows down there."""
    models = _check_models(models, seeds)
    check_settings(epochs, lr, weight_decay, batch_size, 0)
    settings = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size)
    if group is not None:
        check_option("group", group, PositiveInt)
    if not batches(models[0], split, len(models), group):
        return [fit(m, split, seed=s, mnemonic=mnemonic, progress=progress, **settings) for m, s in zip(models, seeds)]
    if not isinstance(split, Split):
        raise TypeError(f"split must be a Split, got {type(split).__name__}")
    if len(split) == 0:
        raise ValueError("split is empty: give the data to train on")
    size = group or len(models)
    modes = [{module: module.training for module in model.modules()} for model in models]
    try:
        losses = []
        for start in range(0, len(models), size):
            part = slice(start, start + size)
            losses += _fit_stacked(models[part], split, list(seeds)[part], mnemonic, progress, **settings)
        return losses
    finally:
        for mode in modes:
            for module, training in mode.items():
                module.training = training


def _fit_stacked(
    models: list[nn.Module],
    split: Split,
    seeds: list[int],
    mnemonic: Optional[MnemonicCodes],
    progress: bool,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> list[list[float]]:
    """The batched training loop of `fit_ensemble`; writes the trained
    parameters and buffers back into `models`."""
    for model in models:
        model.train()
    trainable = [name for name, p in models[0].named_parameters() if p.requires_grad]
    params, buffers = stack_module_state(models)
    frozen = {name: value for name, value in params.items() if name not in trainable}
    weights = {name: params[name] for name in trainable}
    skeleton = copy.deepcopy(models[0]).to("meta").train()

    def forward(w: dict[str, torch.Tensor], b: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, ({**w, **b}), (inputs,))

    batched = vmap(forward, in_dims=(0, 0, 0))
    state = {**buffers, **{name: value.detach() for name, value in frozen.items()}}
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    bounds = batch_bounds(len(split), batch_size)
    optimizer, schedule = recipe_optimizer(list(weights.values()), lr, weight_decay, epochs * len(bounds))
    device, count = split.labels.device, len(models)
    losses: list[list[float]] = [[] for _ in models]
    for _ in epoch_progress(range(epochs), progress, "training"):
        orders = torch.stack([torch.randperm(len(split), generator=g) for g in generators]).to(device)
        totals = torch.zeros(count, dtype=torch.float64)
        for start, stop in bounds:
            index = orders[:, start:stop]
            inputs, labels = split.inputs[index], split.labels[index]
            if mnemonic is not None:
                inputs = torch.stack([mnemonic.mix(inputs[i], labels[i], generators[i]) for i in range(count)])
            logits = batched(weights, state, inputs)
            per_model = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
            per_model = per_model.view(count, -1).mean(1)
            optimizer.zero_grad(set_to_none=True)
            per_model.sum().backward()
            optimizer.step()
            schedule.step()
            totals += per_model.detach().double().cpu() * (stop - start)
        for i in range(count):
            losses[i].append(float(totals[i]) / len(split))
    _write_back(models, {**weights, **state})
    return losses


def _write_back(models: list[nn.Module], stacked: dict[str, torch.Tensor]) -> None:
    """Copies model i's slice of every stacked parameter and buffer into it."""
    with torch.no_grad():
        for i, model in enumerate(models):
            for name, value in [*model.named_parameters(), *model.named_buffers()]:
                value.copy_(stacked[name][i])


def train_ensemble(
    arch: str = "cnn",
    seeds: Sequence[int] = range(8),
    *,
    split: Optional[Split] = None,
    epochs: int = TRAINING_DEFAULTS["epochs"],
    lr: float = TRAINING_DEFAULTS["lr"],
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
    batch_size: int = TRAINING_DEFAULTS["batch_size"],
    mnemonic: Optional[MnemonicCodes] = None,
    cache: bool = True,
    progress: bool = False,
) -> list[nn.Module]:
    """One `models.build(arch)` per seed, initialised as `train(arch, seed=s)`
    initialises it and trained with `fit_ensemble` on `split` (default: the
    digits training split), on the CPU, in eval mode.

    With `cache=True` each model is cached under its own configuration (the
    data's fingerprint and the seed included), so a later call with more
    seeds trains only the new ones. Models trained in batched passes are
    cached apart from `train()`'s (the two loops agree only up to float
    rounding); those trained one at a time share its cache."""
    if not isinstance(seeds, (list, tuple, range)) or len(seeds) == 0:
        raise ValueError("seeds must be a non-empty sequence of seeds")
    split = data.digits().train if split is None else split
    if not isinstance(split, Split):
        raise TypeError(f"split must be a Split, got {type(split).__name__}")
    settings = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size)
    check_settings(epochs, lr, weight_decay, batch_size, 0)
    for seed in seeds:
        check_seed(seed)
    fingerprint = data.fingerprint(split)
    models = [fresh(arch, seed) for seed in seeds]
    # Models trained one at a time are train()'s own (same key); batched ones differ by rounding.
    trainer = "ensemble" if batches(models[0], split, len(seeds)) else None
    paths = [cache_path(arch, {**settings, "seed": s}, fingerprint, mnemonic, trainer) for s in seeds]
    missing = [i for i, (model, path) in enumerate(zip(models, paths)) if not (cache and load_cached(model, path))]
    if missing:
        fit_ensemble(
            [models[i] for i in missing],
            split,
            seeds=[seeds[i] for i in missing],
            group=len(missing) if trainer else None,  # the path the cache key names, however many are missing
            mnemonic=mnemonic,
            progress=progress,
            **settings,
        )
        for i in missing:
            models[i].eval()
            if cache:
                save(models[i].state_dict(), paths[i])
    return models
