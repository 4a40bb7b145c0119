"""Skip the training images the model already fits: a feed that leaves out the easiest each epoch.

From epoch ``from_epoch`` on, every epoch drops the ``fraction`` of training images whose
loss was lowest when last seen, and trains on the rest in shuffled batches:

    skip_e = the floor(fraction * n) images with the smallest l_i, among those not skipped in e - 1

where ``l_i`` is image i's per-example loss from the last step that saw it. The losses are
stale (up to two epochs old) but free: they come from the training forward pass the step
makes anyway (selective backprop with stale losses, Jiang et al. 2019), so an epoch costs
``1 - fraction`` of a full one. No image sits out two epochs in a row, so every loss is
refreshed at least every other epoch. With ``fraction = 0`` the feed yields exactly the
batches of :class:`~superconverge.train.feed.ArrayFeed`.

The loss must come from :meth:`SkipEasyFeed.loss_fn`, which records each example's loss
for the batch the feed last yielded (the fit loop draws a batch, then computes its loss).
The alternating flip counts views per image, not epochs, so a skipped image still
alternates between mirrored and unmirrored on the views it gets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from superconverge.train.augment import CIFAR10_MEAN, CIFAR10_STD, Augment, alternating_flip, to_input
from superconverge.train.augment import augment as apply_augment
from superconverge.train.data import epoch_permutation, seeded_generator

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(eq=False)
class SkipEasyFeed:
    """Shuffled, augmented batches of uint8 NHWC ``images`` without the easiest ``fraction`` of them."""

    images: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    augment: Augment | None = None
    seed: int = 0
    fraction: float = 0.0
    from_epoch: int = 1
    channels_last: bool = True
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    losses: torch.Tensor = field(init=False, repr=False)  # per image, from its last step; inf = not seen
    views: torch.Tensor = field(init=False, repr=False)  # how many times each image has been yielded
    skipped: torch.Tensor = field(init=False, repr=False)  # left out of the last epoch
    rows: torch.Tensor | None = field(init=False, default=None, repr=False)  # image indices of the last batch

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.labels) != n:
            raise ValueError(f"{n} images but {len(self.labels)} labels")
        if not 1 <= self.batch_size <= n:
            raise ValueError(f"batch size must be in [1, {n}] (the number of images), got {self.batch_size}")
        if not 0 <= self.fraction <= 0.5:
            raise ValueError(f"the fraction of images to skip must be in [0, 0.5] (no image sits out two epochs "
                             f"running), got {self.fraction}")
        if self.from_epoch < 1:
            raise ValueError(f"skipping can start at epoch 1 at the earliest (epoch 0 has no losses yet), "
                             f"got from_epoch={self.from_epoch}")
        self.losses = torch.full((n,), math.inf)
        self.views = torch.zeros(n, dtype=torch.int64)
        self.skipped = torch.zeros(n, dtype=torch.bool)

    def epoch_size(self, epoch: int) -> int:
        """Images trained on in ``epoch``."""
        n = len(self.images)
        return n - (math.floor(self.fraction * n) if epoch >= self.from_epoch else 0)

    def batches_in(self, epoch: int) -> int:
        return math.ceil(self.epoch_size(epoch) / self.batch_size)

    def __len__(self) -> int:  # the most batches any epoch has (the progress bar's total)
        return self.batches_in(0)

    def __call__(self, epoch: int, start_batch: int = 0, shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
        if start_batch or shard != (0, 1):
            raise ValueError("SkipEasyFeed chooses each epoch from the losses of the last, so it cannot resume "
                             "mid-epoch or split batches across processes; train in one process from the start")
        order = epoch_permutation(len(self.images), self.seed, epoch)
        skip = torch.zeros_like(self.skipped)
        drop = len(self.images) - self.epoch_size(epoch)
        if drop:
            candidates = self.losses.masked_fill(self.skipped, math.inf)
            skip[torch.topk(candidates, drop, largest=False).indices] = True
            order = order[~skip[order]]
        self.skipped = skip
        return self._batches(order, epoch)

    def _batches(self, order: torch.Tensor, epoch: int) -> Iterator[Batch]:
        for index, start in enumerate(range(0, len(order), self.batch_size)):
            rows = order[start:start + self.batch_size]
            x = self.images[rows]
            if self.augment is not None:
                x = apply_augment(x, self.augment, generator=seeded_generator(self.seed, epoch, 1, index))
                if self.augment.flip == "alternate":
                    x = alternating_flip(x, rows, self.views[rows], self.seed)
            self.views[rows] += 1
            self.rows = rows
            yield to_input(x, mean=self.mean, std=self.std, channels_last=self.channels_last), self.labels[rows]

    def loss_fn(self, label_smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Mean cross-entropy of a batch, recording each example's loss for the images just yielded."""

        def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if self.rows is None or len(self.rows) != len(y):
                raise RuntimeError("SkipEasyFeed.loss_fn scores the batch the feed last yielded; call it on that "
                                   "batch's output, once per batch")
            each = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing, reduction="none")
            self.losses[self.rows] = each.detach().float().cpu()
            return each.mean()

        return loss


__all__ = ["SkipEasyFeed"]
