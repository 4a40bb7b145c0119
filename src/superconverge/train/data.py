"""The data layer every data set shares: errors, the decode cache, seeded batches and loaders.

Data is decoded once into uint8 arrays and cached as .npz; training then draws batches from
those arrays held in memory. Shuffling and augmentation are pure functions of
(seed, epoch, batch index), so a run resumed at any batch sees exactly the data it would
have seen. CIFAR-10 itself is read by `superconverge.train.cifar`.

Example:
    >>> import torch
    >>> images = torch.zeros((10, 32, 32, 3), dtype=torch.uint8)
    >>> labels = torch.arange(10)
    >>> [y.tolist() for _, y in batches(images, labels, 4, shuffle=False)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from superconverge.train.augment import CIFAR10_MEAN, CIFAR10_STD, Augment, to_input
from superconverge.train.augment import alternating_flip
from superconverge.train.augment import augment as apply_augment

CACHE_ENV = "SUPERCONVERGE_CACHE"
_CACHE_VERSION = 1  # bump when the decoders change what they produce

# What a fit loop consumes: `batches(...)` and any DataLoader are both this.
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class DataError(ValueError):
    """A data source is missing, malformed or unreadable; the message says what to do."""


def cache_dir(override: str | Path | None = None) -> Path:
    """The cache directory: `override`, else $SUPERCONVERGE_CACHE, else ~/.cache/superconverge."""
    if override is not None:
        return Path(override).expanduser()
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "superconverge"


def cached(
    source: Path,
    decode: Callable[[Path], dict[str, np.ndarray]],
    *,
    name: str,
    directory: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """Return `decode(source)`, read from an .npz cache while the source is unchanged.

    The cache file is keyed by the source's resolved path and by the size and mtime of
    every file in it, so a replaced or edited source is decoded again; the stale entry
    for the same path is then deleted rather than left to fill the disk.
    """
    folder = cache_dir(directory)
    path_key, content_key = _source_keys(source)
    target = folder / f"{name}-{path_key}-{content_key}.npz"
    if target.is_file():
        with np.load(target, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    arrays = decode(source)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: loads in a fraction of a second
        os.replace(tmp, target)  # atomic, so a killed run never leaves a half-written cache
    finally:
        Path(tmp).unlink(missing_ok=True)
    for stale in folder.glob(f"{name}-{path_key}-*.npz"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return arrays


def _source_keys(source: Path) -> tuple[str, str]:
    """Hashes of (resolved path) and of (size, mtime) of every file under it."""
    source = source.resolve()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    content = hashlib.sha256(f"v{_CACHE_VERSION}".encode())
    for file in files:
        st = file.stat()
        content.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path_key = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    return path_key, content.hexdigest()[:12]


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, *keys), unrelated for nearby keys."""
    # Hashing avoids the collisions of arithmetic mixing (seed*K + epoch) and of numpy's
    # SeedSequence, which gives [s, e] and [s, e, 0] the same stream.
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of `n` examples in `epoch`, a pure function of (seed, epoch), as resumes need."""
    return torch.randperm(n, generator=seeded_generator(seed, epoch, 0))


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    augment: Augment | None = None,
    start_batch: int = 0,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield one epoch of (x, y) from uint8 NHWC `images` in memory; x is normalised NCHW `dtype`.

    The order comes from `epoch_permutation(len(images), seed, epoch)` and each batch's
    augmentation from its own generator seeded by (seed, epoch, batch index), so
    `start_batch=k` yields exactly batches k, k+1, ... of the full epoch without
    computing the ones before.
    """
    if batch_size < 1 or start_batch < 0:
        raise ValueError(
            f"need batch_size >= 1 and start_batch >= 0, got {batch_size} and {start_batch}"
        )
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    n = len(images)
    order = epoch_permutation(n, seed, epoch) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n

    def batch(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = order[index * batch_size : min((index + 1) * batch_size, stop)]
        x = images[rows]
        if augment is not None:
            x = apply_augment(x, augment, generator=seeded_generator(seed, epoch, 1, index))
            if augment.flip == "alternate":
                x = alternating_flip(x, rows, epoch, seed)
        x = to_input(x, mean=mean, std=std, dtype=dtype, channels_last=channels_last)
        return x, labels[rows]

    # A lazy map rather than a generator function, so bad arguments fail at the call.
    return map(batch, range(start_batch, -(-stop // batch_size)))


def loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over any map-style Dataset whose order depends only on (seed, epoch).

    Build one per epoch: the generator (which also seeds the workers) is consumed as the
    loader iterates, so reusing a loader makes epoch k depend on epochs before it.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=seeded_generator(seed, epoch, 0),
    )
