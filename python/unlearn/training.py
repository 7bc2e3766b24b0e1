"""Training of the embedded default models, and the fit loop that the
retrain baseline shares with it.

Training is deterministic for a seed: initialisation runs under a forked,
seeded RNG and shuffling uses its own seeded generator, so nothing touches
torch's global random state. Trained weights are cached in the user cache
directory, keyed by everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Union

import torch
from torch import nn

from . import data
from ._core import (
    Data,
    NonNegative,
    Positive,
    PositiveInt,
    Samples,
    Split,
    Stream,
    as_split,
    check_model,
    check_option,
    check_seed,
    model_device,
    progress,
    seeded_rng,
)
from .models import build

if TYPE_CHECKING:
    from .mnemonic_codes import MnemonicCodes

TRAINING_DEFAULTS: dict[str, Any] = {"epochs": 15, "lr": 0.05, "weight_decay": 5e-4, "batch_size": 64}
"""SGD (momentum 0.9, cosine learning-rate decay) settings of `train()`,
reused by the retrain baseline."""

# Changes whenever the recipe in fit() changes, so stale cached weights are not reused.
_RECIPE = "sgd-momentum0.9-cosine-v1"


def check_settings(epochs: Any, lr: Any, weight_decay: Any, batch_size: Any, seed: Any) -> None:
    """Refuses training settings of the wrong type or range, naming the setting."""
    check_option("epochs", epochs, PositiveInt)
    check_option("lr", lr, Positive)
    check_option("weight_decay", weight_decay, NonNegative)
    check_option("batch_size", batch_size, PositiveInt)
    check_seed(seed)


def reinitialize(model: nn.Module, seed: int) -> nn.Module:
    """Resets the parameters (and BatchNorm statistics) of every submodule that
    has `reset_parameters`, as a freshly built model would have them; the same
    seed gives the same weights. Returns `model`, changed in place."""
    check_model(model)
    check_seed(seed)
    with seeded_rng(seed, model_device(model)):
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return model


def recipe_optimizer(
    parameters: list[torch.Tensor], lr: float, weight_decay: float, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The recipe's SGD (momentum 0.9, weight decay) and its learning rate
    decayed to 0 by a cosine over `total_steps` steps."""
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )
    return optimizer, schedule


def fit(
    model: nn.Module,
    split: Union[Samples, Data],
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    progress: bool = False,
    mnemonic: Optional["MnemonicCodes"] = None,
) -> list[float]:
    """Trains `model` in place on `split` with cross-entropy, SGD (momentum 0.9,
    weight decay, learning rate decayed to 0 by a cosine over all steps).
    Tensors are shuffled by a generator seeded with `seed`; a DataLoader is
    read once per epoch in its own order (its shuffling and augmentation draw
    from torch's RNG, seeded with `seed` for the call, like dropout), its
    batches cut to at most `batch_size`. The caller's RNG state is restored.
    With `mnemonic`, each input is replaced by its class code with
    probability t_mix (`MnemonicCodes.mix`, drawn from the generator).
    Returns the mean training loss of every epoch. The model's train/eval
    modes are restored afterwards."""
    check_model(model)
    if isinstance(split, Split):
        split = as_split((split.inputs, split.labels), "split", model)
    elif not isinstance(split, Stream):
        split = as_split(split, "split", model)
        if split is None:
            raise ValueError("split is None: give the data to train on")
    check_settings(epochs, lr, weight_decay, batch_size, seed)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("model has no trainable parameters")

    generator = torch.Generator().manual_seed(seed)
    optimizer, schedule = recipe_optimizer(parameters, lr, weight_decay, epochs * split.steps(batch_size))
    modes = {module: module.training for module in model.modules()}
    model.train()
    losses = []
    try:
        # Dropout, and a DataLoader's shuffling and augmentation, draw from the seeded stream.
        with seeded_rng(seed, model_device(model)):
            for _ in epoch_progress(range(epochs), progress, "training"):
                total, count = 0.0, 0
                for inputs, labels in split.shuffled(batch_size, generator):
                    if mnemonic is not None:
                        inputs = mnemonic.mix(inputs, labels, generator)
                    loss = nn.functional.cross_entropy(model(inputs), labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += float(loss.detach()) * len(labels)
                    count += len(labels)
                losses.append(total / count)
    finally:
        for module, mode in modes.items():
            module.training = mode
    return losses


def epoch_progress(steps: range, enabled: bool, description: str) -> Iterable[int]:
    """`steps`, counted per epoch when `enabled` (a tqdm bar, or plain lines without tqdm)."""
    return progress(steps, len(steps), description, enabled, unit="epoch")


def cache_dir() -> Path:
    """Where trained default models are kept: $UNLEARN_CACHE_DIR, else
    $XDG_CACHE_HOME/torch-unlearn, else ~/.cache/torch-unlearn."""
    if os.environ.get("UNLEARN_CACHE_DIR"):
        return Path(os.environ["UNLEARN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "torch-unlearn"


def train(
    arch: str = "cnn",
    *,
    epochs: int = TRAINING_DEFAULTS["epochs"],
    lr: float = TRAINING_DEFAULTS["lr"],
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
    batch_size: int = TRAINING_DEFAULTS["batch_size"],
    seed: int = 0,
    cache: bool = True,
    progress: bool = False,
) -> nn.Module:
    """`models.build(arch)` trained on `data.digits().train`, on the CPU, in
    eval mode. With `cache=True` the weights are stored in `cache_dir()` under
    a hash of the configuration, and a later call with the same configuration
    loads them instead of training."""
    settings = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed)
    return _train(arch, settings, None, cache=cache, progress=progress)


def train_mnemonic(
    arch: str = "cnn",
    *,
    t_mix: float = 0.1,
    distribution: str = "normal",
    code_seed: int = 0,
    epochs: int = TRAINING_DEFAULTS["epochs"],
    lr: float = TRAINING_DEFAULTS["lr"],
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"],
    batch_size: int = TRAINING_DEFAULTS["batch_size"],
    seed: int = 0,
    cache: bool = True,
    progress: bool = False,
) -> tuple[nn.Module, "MnemonicCodes"]:
    """Like `train()`, with mnemonic codes mixed into the digits (each sample
    replaced by its class code with probability `t_mix`, 0.1 as the paper
    uses for MNIST). Returns the model and the `MnemonicCodes`, whose codes
    the `mnemonic` method needs; cached under a key that includes the codes."""
    from .mnemonic_codes import MnemonicCodes

    codes = MnemonicCodes(data.digits().train, t_mix=t_mix, distribution=distribution, seed=code_seed)
    settings = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed)
    return _train(arch, settings, codes, cache=cache, progress=progress), codes


def _train(
    arch: str, settings: dict[str, Any], mnemonic: Optional["MnemonicCodes"], *, cache: bool, progress: bool
) -> nn.Module:
    check_settings(
        settings["epochs"], settings["lr"], settings["weight_decay"], settings["batch_size"], settings["seed"]
    )
    model = fresh(arch, settings["seed"])
    digits = data.digits()
    path = cache_path(arch, settings, digits.fingerprint, mnemonic)
    if cache and load_cached(model, path):
        return model
    fit(model, digits.train, progress=progress, mnemonic=mnemonic, **settings)
    model.eval()
    if cache:
        save(model.state_dict(), path)
    return model


def fresh(arch: str, seed: int) -> nn.Module:
    """`models.build(arch)` initialised under `seed`, as `train()` starts it."""
    with seeded_rng(seed, torch.device("cpu")):
        return build(arch)


def cache_path(
    arch: str,
    settings: dict[str, Any],
    fingerprint: str,
    mnemonic: Optional["MnemonicCodes"] = None,
    trainer: Optional[str] = None,
) -> Path:
    """Where the model of this configuration is cached: a hash of the
    architecture, the settings (seed included), the training data's
    fingerprint, the recipe, the mnemonic codes and the `trainer` (when not
    the one-at-a-time loop)."""
    config = {"arch": arch, **settings, "data": fingerprint, "recipe": _RECIPE}
    if mnemonic is not None:
        config["mnemonic"] = mnemonic.fingerprint()
    if trainer is not None:
        config["trainer"] = trainer
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"{arch}{'-mnemonic' if mnemonic is not None else ''}-{key}.pt"


def load_cached(model: nn.Module, path: Path) -> bool:
    """Loads the weights cached at `path` into `model` (then in eval mode);
    False when there are none, or (with a warning) when they are unreadable."""
    if not path.is_file():
        return False
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        warnings.warn(f"ignoring the unreadable cached model {path} ({error}); training again", stacklevel=3)
        return False
    model.eval()
    return True


def save(state: dict[str, torch.Tensor], path: Path) -> None:
    """Writes atomically (temporary file, then rename), so concurrent runs never
    read a half-written file; a cache that cannot be written only warns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            torch.save(state, temporary)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError as error:
        warnings.warn(f"could not cache the trained model in {path.parent}: {error}", stacklevel=3)
