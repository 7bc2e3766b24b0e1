"""Mnemonic codes (Yamashita et al.): one fixed random input per class, mixed
into training so that the trained model learns to classify the codes too.

At unlearning time the codes stand in for the data: the `mnemonic` method
estimates which weights matter for the forget classes from the codes alone.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from ._core import Range, Split, check_option, check_seed

Distribution = Literal["normal", "uniform"]


def make_codes(
    classes: int, shape: Sequence[int], *, distribution: Distribution = "normal", seed: int = 0
) -> torch.Tensor:
    """`classes` codes of `shape` (float32, CPU) drawn from a generator seeded
    with `seed`: standard normal (the paper) or uniform on [0, 1) (its code)."""
    check_option("classes", classes, Annotated[int, Range(2)])
    check_option("distribution", distribution, Distribution)
    check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randn if distribution == "normal" else torch.rand
    return draw((classes, *shape), generator=generator)


class MnemonicCodes(Dataset):
    """A dataset that hands out, for each sample (x, y), either x or the code of
    class y, the code with probability `t_mix` (0.1 in the paper for MNIST,
    0.3 for CIFAR). Which samples are replaced is drawn once per epoch from
    (`seed`, epoch): call `set_epoch(e)` at the start of every epoch, as with
    DistributedSampler (without it the draw moves on every len(dataset) reads
    in this process). `mix` does the same for a whole batch inside a training
    loop. `codes` is what the `mnemonic` method needs later.

    `data` is a Split, an (inputs, labels) pair of tensors, or any dataset of
    (input, label) pairs; `classes` defaults to the largest label + 1 of a
    tensor pair and must be given for other datasets.
    """

    def __init__(
        self,
        data: Union[Split, Sequence[torch.Tensor], Dataset],
        *,
        classes: Optional[int] = None,
        t_mix: float = 0.1,
        distribution: Distribution = "normal",
        seed: int = 0,
    ) -> None:
        check_option("t_mix", t_mix, Annotated[float, Range(0, 1)])
        if isinstance(data, Split):
            data = (data.inputs, data.labels)
        if isinstance(data, (tuple, list)):
            if len(data) != 2 or not all(isinstance(t, torch.Tensor) for t in data) or len(data[0]) != len(data[1]):
                raise ValueError("data: expected an (inputs, labels) pair of tensors of the same length")
            if len(data[1]) == 0:
                raise ValueError("data is empty")
            if data[1].is_floating_point():
                raise ValueError(f"data: labels must be integer class indices, got {data[1].dtype}")
            classes = int(data[1].max()) + 1 if classes is None else classes
            self._pair: Optional[tuple[torch.Tensor, torch.Tensor]] = (data[0], data[1])
            shape = tuple(data[0].shape[1:])
        elif isinstance(data, Dataset):
            if classes is None:
                raise ValueError("classes: give the number of classes for a dataset that is not a pair of tensors")
            self._pair = None
            shape = tuple(torch.as_tensor(data[0][0]).shape)
        else:
            raise TypeError(f"data must be a Split, an (inputs, labels) pair or a Dataset, got {type(data).__name__}")
        self.data = data
        self.t_mix = float(t_mix)
        self.distribution = distribution
        self.seed = seed
        self.codes = make_codes(classes, shape, distribution=distribution, seed=seed)
        self._epoch, self._reads, self._mask = 0, 0, None

    @property
    def classes(self) -> int:
        return self.codes.shape[0]

    def __len__(self) -> int:
        return len(self._pair[1]) if self._pair is not None else len(self.data)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Draws which samples are replaced in `epoch` (from `seed` and `epoch`)."""
        self._epoch, self._reads, self._mask = int(epoch), 0, None

    def _replaced(self, index: int) -> bool:
        if self._reads == len(self):
            self.set_epoch(self._epoch + 1)
        if self._mask is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self._epoch)
            self._mask = torch.rand(len(self), generator=generator) < self.t_mix
        self._reads += 1
        return bool(self._mask[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        x, y = (self._pair[0][index], self._pair[1][index]) if self._pair is not None else self.data[index]
        if self._replaced(index):
            label = int(y)
            if not 0 <= label < self.classes:
                raise ValueError(
                    f"label {label} of sample {index} is not among the {self.classes} classes of the codes"
                )
            x = self.codes[label].to(dtype=torch.as_tensor(x).dtype, device=torch.as_tensor(x).device)
        return x, y

    def mix(self, inputs: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The batch with each input replaced by its class code with
        probability t_mix, drawn from `generator` (a CPU generator)."""
        replace = (torch.rand(len(labels), generator=generator) < self.t_mix).to(labels.device)
        codes = self.codes.to(device=inputs.device, dtype=inputs.dtype)[labels]
        return torch.where(replace.view(-1, *([1] * (inputs.dim() - 1))), codes, inputs)

    def fingerprint(self) -> str:
        """A digest of the codes and t_mix (keys cached models trained with them)."""
        digest = hashlib.sha256(self.codes.numpy().tobytes())
        digest.update(repr((self.t_mix, self.distribution, self.seed)).encode())
        return digest.hexdigest()[:16]

    def split(self) -> Split:
        """The codes as a Split: code c labelled c."""
        return Split(self.codes, torch.arange(self.classes))


def code_split(codes: Union[MnemonicCodes, torch.Tensor]) -> Split:
    """The codes of a MnemonicCodes, or a (classes, *input shape) tensor, as a
    Split with code c labelled c."""
    if isinstance(codes, MnemonicCodes):
        return codes.split()
    if isinstance(codes, torch.Tensor):
        if (
            codes.dim() < 2
            or codes.shape[0] < 2
            or not codes.is_floating_point()
            or not bool(torch.isfinite(codes).all())
        ):
            raise ValueError(
                f"codes must be a finite floating-point tensor of shape (classes >= 2, *input shape), got "
                f"{codes.dtype} {tuple(codes.shape)}"
            )
        return Split(codes, torch.arange(codes.shape[0], device=codes.device))
    raise TypeError(f"codes must be a MnemonicCodes or a tensor of codes, got {type(codes).__name__}")
