"""Data read batch by batch: a request part given as a DataLoader or Dataset
is never gathered into one tensor.

`as_split` turns what a caller passes into one of two kinds of samples with
one interface (`Samples`): a `Split` for tensors, already in memory, and a
`Stream` for DataLoaders. Both give `len()`, `batches(size)` (in order, on
the model's device), `shuffled(size, generator)` (one epoch), `sample(size,
generator)` (a random subsample, as a Split) and `where(classes, keep)`.
A Stream reads its DataLoaders afresh on every pass, so a shuffling loader
reshuffles and random augmentation is drawn again, and moves each batch to
the model's device only when it is used. Memory then holds a batch at a
time, plus what a method keeps on purpose (a subsample, per-sample outputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset

from .request import Data, Split, batch_pair, check_pair, model_device, output_classes

READ_BATCH = 256
"""Samples per batch when a Dataset (not a DataLoader) is given."""

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Part:
    """One source of a Stream and the label filter applied to it: samples
    whose label is in `classes` are kept (`keep="in"`), dropped ("out"), or
    refused with an error ("only": every label must be among them)."""

    source: Union[DataLoader, Split]
    filters: tuple[tuple[torch.Tensor, str], ...] = ()


class Stream:
    """Samples read from DataLoaders (and tensor parts) batch by batch, each
    batch moved to `device`, checked and filtered by label as it is read."""

    def __init__(self, parts: Sequence[_Part], name: str, device: torch.device):
        self.parts, self.name, self.device = list(parts), name, device
        self.num_classes: Optional[int] = None
        self._sizes: Optional[list[int]] = None
        self._samples: dict[tuple[int, int], Split] = {}

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, parts={len(self.parts)}, device={self.device})"

    def _raw(self, part: _Part) -> Iterator[Batch]:
        if isinstance(part.source, Split):
            yield from part.source.batches(READ_BATCH)
            return
        for batch in part.source:
            inputs, labels = batch_pair(batch, self.name)
            inputs = inputs.to(self.device, non_blocking=True)
            labels = torch.as_tensor(labels).to(self.device, non_blocking=True)
            check_pair(inputs, labels, self.name)
            yield inputs, labels.long()

    def _filtered(self, part: _Part) -> Iterator[Batch]:
        for inputs, labels in self._raw(part):
            if self.num_classes is not None and len(labels):
                low, high = int(labels.min()), int(labels.max())
                if low < 0 or high >= self.num_classes:
                    raise ValueError(
                        f"{self.name}: labels must lie in 0..{self.num_classes - 1} (the model has "
                        f"{self.num_classes} outputs), got {low}..{high}"
                    )
            for classes, keep in part.filters:
                inside = torch.isin(labels, classes.to(labels.device))
                if keep == "only" and not bool(inside.all()):
                    raise ValueError(
                        f"{self.name}: samples of classes {sorted(set(labels[~inside].tolist()))} are not among "
                        f"forget_classes {classes.tolist()}"
                    )
                if keep != "only":
                    mask = inside if keep == "in" else ~inside
                    inputs, labels = inputs[mask], labels[mask]
            if len(labels):
                yield inputs, labels

    def batches(self, size: Optional[int] = None) -> Iterator[Batch]:
        """One pass: every part in turn, each batch cut to at most `size`
        samples (a DataLoader's own batches when None). Raises ValueError
        when the pass yields no sample."""
        empty = True
        for part in self.parts:
            for inputs, labels in self._filtered(part):
                empty = False
                step = size or len(labels)
                for start in range(0, len(labels), step):
                    yield inputs[start : start + step], labels[start : start + step]
        if empty:
            raise ValueError(f"{self.name} is empty: reading it gave no samples")

    def shuffled(self, size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: a pass in the loaders' own order (they shuffle, if at all,
        as they were built to); `generator` is for tensor samples."""
        return self.batches(size)

    def sizes(self) -> list[int]:
        """The number of samples of each batch of a pass (counted once: from
        the sampler when a DataLoader's batches are known without reading it)."""
        if self._sizes is None:
            known = [_known_sizes(part) for part in self.parts]
            if all(k is not None for k in known):
                self._sizes = [size for k in known for size in k]
            else:
                self._sizes = [len(labels) for part in self.parts for _, labels in self._filtered(part)]
        return self._sizes

    def __len__(self) -> int:
        return sum(self.sizes())

    def steps(self, size: int) -> int:
        """Batches of at most `size` samples in one pass."""
        return sum(math.ceil(s / size) for s in self.sizes())

    def first(self) -> torch.Tensor:
        """The inputs of the first batch, to check the model takes them."""
        for inputs, _ in self.batches():
            return inputs
        raise AssertionError("unreachable: batches() raises on an empty pass")

    def sample(self, size: int, generator: torch.Generator) -> Split:
        """`size` samples drawn uniformly without replacement in one pass
        (reservoir sampling with `generator`; all of them, in order, when the
        pass has no more), in memory."""
        reservoir = _Reservoir(size, generator)
        for inputs, labels in self.batches():
            reservoir.offer(inputs, labels)
        return reservoir.split()

    def sample_per_class(self, size: int, generator: torch.Generator) -> dict[int, Split]:
        """Up to `size` samples of each class, drawn like `sample` in one pass."""
        reservoirs: dict[int, _Reservoir] = {}
        for inputs, labels in self.batches():
            for c in labels.unique().tolist():
                mask = labels == c
                reservoirs.setdefault(c, _Reservoir(size, generator)).offer(inputs[mask], labels[mask])
        return {c: reservoirs[c].split() for c in sorted(reservoirs)}

    def memo_sample(self, size: int, seed: int) -> Split:
        """`sample(size, generator seeded with seed)`, read once per stream."""
        if (size, seed) not in self._samples:
            self._samples[(size, seed)] = self.sample(size, torch.Generator().manual_seed(seed))
        return self._samples[(size, seed)]

    def where(self, classes: Sequence[int], keep: str) -> "Stream":
        """The samples whose label is in `classes` (keep="in") or not ("out");
        with "only", the same samples, refusing any label outside `classes`."""
        wanted = torch.tensor(list(classes), dtype=torch.long)
        parts = [replace(part, filters=part.filters + ((wanted, keep),)) for part in self.parts]
        out = Stream(parts, self.name, self.device)
        out.num_classes = self.num_classes
        return out


Samples = Union[Split, Stream]
"""A part of a request as methods read it: tensors in memory, or streamed."""


class _Reservoir:
    """A uniform random sample of `size` rows from rows offered batch by
    batch (reservoir sampling, Algorithm R, vectorised per batch)."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator, self.seen = size, generator, 0
        self.kept: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def offer(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        if self.kept is None:
            self.kept = (inputs.new_empty((self.size, *inputs.shape[1:])), labels.new_empty(self.size))
        fill = max(0, min(self.size - self.seen, len(labels)))
        self.kept[0][self.seen : self.seen + fill] = inputs[:fill]
        self.kept[1][self.seen : self.seen + fill] = labels[:fill]
        positions = torch.arange(self.seen + fill, self.seen + len(labels), dtype=torch.float64)
        slots = (torch.rand(len(positions), generator=self.generator, dtype=torch.float64) * (positions + 1)).long()
        hits = (slots < self.size).nonzero()[:, 0]
        for row, slot in zip((hits + fill).tolist(), slots[hits].tolist()):
            self.kept[0][slot], self.kept[1][slot] = inputs[row], labels[row]
        self.seen += len(labels)

    def split(self) -> Split:
        assert self.kept is not None, "a reservoir is read only after a non-empty pass"
        count = min(self.seen, self.size)
        return Split(self.kept[0][:count], self.kept[1][:count])


def _known_sizes(part: _Part) -> Optional[list[int]]:
    """Batch sizes of a pass over an unfiltered DataLoader, from its sampler
    alone (None when only reading it tells)."""
    loader = part.source
    if isinstance(loader, Split):
        return None if part.filters else [len(b[1]) for b in loader.batches(READ_BATCH)]
    if part.filters or isinstance(loader.dataset, IterableDataset) or type(loader.batch_sampler) is not BatchSampler:
        return None
    try:
        n = len(loader.sampler)
    except TypeError:
        return None
    size = loader.batch_size
    full, rest = divmod(n, size)
    return [size] * full + ([] if loader.drop_last or rest == 0 else [rest])


def as_loader(data: Union[DataLoader, Dataset]) -> DataLoader:
    """A DataLoader as it is, a Dataset in a DataLoader of READ_BATCH samples."""
    return data if isinstance(data, DataLoader) else DataLoader(data, batch_size=READ_BATCH)


def as_split(data: Optional[Data], name: str, model: Optional[nn.Module] = None) -> Optional[Samples]:
    """A DataLoader or Dataset as a Stream (read batch by batch, moved to
    `model`'s device), an (inputs, labels) pair or a Split as a validated Split
    (on `model`'s device, when a model is given); None stays None."""
    if isinstance(data, Stream):
        if model is not None and data.device != model_device(model):
            raise ValueError(f"{name} is read onto {data.device} but the model is on {model_device(model)}")
        return data
    if isinstance(data, (DataLoader, Dataset)):
        data = as_loader(data)
        device = torch.device("cpu") if model is None else model_device(model)
        return Stream([_Part(data)], name, device)
    if data is None:
        return None
    if isinstance(data, Split):
        inputs, labels = data.inputs, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        inputs, labels = data
    else:
        raise TypeError(
            f"{name} must be a DataLoader, a Dataset, a Split or an (inputs, labels) pair of tensors, "
            f"got {type(data).__name__}"
        )
    check_pair(inputs, labels, name)
    if len(labels) == 0:
        raise ValueError(f"{name} is empty: there is nothing to {'forget' if name == 'forget' else 'use'}")
    device = inputs.device if model is None else model_device(model)
    if inputs.device != device:
        raise ValueError(f"{name} is on {inputs.device} but the model is on {device}: move one of them first")
    return Split(inputs, labels.long())


def check_fits(samples: Samples, name: str, model: nn.Module, num_classes: int) -> None:
    """The model takes the samples' inputs and their labels are among its
    outputs (a Stream checks each batch's labels as it reads it)."""
    output_classes(model, first_inputs(samples), name)
    if isinstance(samples, Stream):
        samples.num_classes = num_classes
        return
    low, high = int(samples.labels.min()), int(samples.labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name}: labels must lie in 0..{num_classes - 1} (the model has {num_classes} outputs), got {low}..{high}"
        )


def first_inputs(samples: Samples) -> torch.Tensor:
    """Some inputs of `samples` (one batch at most), for shape checks."""
    return samples.first() if isinstance(samples, Stream) else samples.inputs[:1]


def materialise(samples: Samples) -> Split:
    """The samples in memory: for methods that work on every sample at once
    (the forget side of lcodec and l2ul), which hold it whole by design."""
    if isinstance(samples, Split):
        return samples
    parts = list(samples.batches())
    return Split(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def _as_stream(samples: Samples, name: str) -> Stream:
    if isinstance(samples, Stream):
        return samples
    return Stream([_Part(samples)], name, samples.inputs.device)


def joined(first: Samples, second: Samples, name: str) -> Samples:
    """`first` then `second`: one Split when both are tensors, else a Stream."""
    if isinstance(first, Split) and isinstance(second, Split):
        return Split(torch.cat([first.inputs, second.inputs]), torch.cat([first.labels, second.labels]))
    one, two = _as_stream(first, name), _as_stream(second, name)
    out = Stream(one.parts + two.parts, name, one.device)
    out.num_classes = one.num_classes or two.num_classes
    return out


def class_request(
    forget: Optional[Samples], retain: Optional[Samples], forget_classes: list[int]
) -> tuple[Optional[Samples], Optional[Samples]]:
    """The (forget, retain) samples of a class request: samples of
    `forget_classes` found in `retain` move to the forget side, so a caller may
    pass all its data as `retain`. Given `forget` samples must belong to the
    forget classes. Either side is None when it has no samples."""
    if forget is not None:
        forget = forget.where(forget_classes, "only")
    moving = kept = None
    if retain is not None:
        moving, kept = retain.where(forget_classes, "in"), retain.where(forget_classes, "out")
        moving, kept = (s if len(s) else None for s in (moving, kept))
    if forget is None or moving is None:
        return forget if forget is not None else moving, kept
    return joined(forget, moving, "forget"), kept
