"""What the fit loop eats: epochs of batches that can start at any batch.

``feed(epoch, start_batch, shard)`` returns an iterator of ``(x, y)``; ``len(feed)`` is the
number of batches per epoch. :class:`ArrayFeed` serves in-memory uint8 images (CIFAR)
with augmentation that is a pure function of (seed, epoch, batch), so a resumed run
sees exactly the batches it would have seen. :class:`LoaderFeed` wraps any
``torch.utils.data`` Dataset, a DataLoader, or a function that builds a loader per epoch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from superconverge.train.augment import CIFAR10_MEAN, CIFAR10_STD, Augment
from superconverge.train.data import batches, loader

Batch = tuple[torch.Tensor, torch.Tensor]
Shard = tuple[int, int]  # (rank, world size)


class Feed(Protocol):
    def __call__(self, epoch: int, start_batch: int = 0, shard: Shard = (0, 1)) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True, eq=False)
class ArrayFeed:
    """Batches from uint8 NHWC images in memory, shuffled and augmented by (seed, epoch, batch)."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    augment: Augment | None = None
    seed: int = 0
    shuffle: bool = True
    drop_last: bool = False
    channels_last: bool = True
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.batch_size > n:
            raise ValueError(
                f"batch size {self.batch_size} is larger than the data set ({n} examples); "
                f"use a batch size of at most {n}"
            )

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __call__(self, epoch: int, start_batch: int = 0, shard: Shard = (0, 1)) -> Iterator[Batch]:
        rank, world = shard
        for x, y in batches(self.images, self.labels, self.batch_size, shuffle=self.shuffle,
                            seed=self.seed, epoch=epoch, drop_last=self.drop_last, augment=self.augment,
                            start_batch=start_batch, channels_last=self.channels_last,
                            mean=self.mean, std=self.std):
            if world > 1:
                x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
            yield x, y


@dataclass(frozen=True, eq=False)
class LoaderFeed:
    """Any Dataset, DataLoader, or ``epoch -> iterable of (x, y)`` function, as a feed.

    With a Dataset the order depends only on (seed, epoch), so resuming is exact; a
    custom function is exact on resume only if its order depends only on the epoch. A
    DataLoader is iterated once per epoch as it is (``batch_size``, ``seed`` and
    ``shuffle`` do not apply); resuming mid-epoch is exact only if its sampler is seeded
    so that an epoch's order is the same in a new process. Starting mid-epoch skips
    batches by iterating past them.
    """

    source: Dataset | DataLoader | Callable[[int], Iterable[Batch]]
    batch_size: int = 128
    seed: int = 0
    shuffle: bool = True
    batches_per_epoch: int | None = None

    def _epoch(self, epoch: int) -> Iterable[Batch]:
        if isinstance(self.source, DataLoader):
            return self.source
        if isinstance(self.source, Dataset):
            return loader(self.source, self.batch_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch)
        return self.source(epoch)

    def __len__(self) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return len(self._epoch(0))  # type: ignore[arg-type]

    def __call__(self, epoch: int, start_batch: int = 0, shard: Shard = (0, 1)) -> Iterator[Batch]:
        rank, world = shard
        for x, y in itertools.islice(iter(self._epoch(epoch)), start_batch, None):
            if world > 1:
                x, y = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
            yield x, y
