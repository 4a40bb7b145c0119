"""The shared data layer: the decode cache, seeded epoch order, batches and the Dataset loader."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from superconverge.train.augment import Augment, to_input
from superconverge.train.data import (
    batches,
    cache_dir,
    cached,
    epoch_permutation,
    loader,
    seeded_generator,
)


def data(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    return images, torch.arange(n)


# --- cache -------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SUPERCONVERGE_CACHE", raising=False)
    assert cache_dir().parts[-2:] == (".cache", "superconverge")
    monkeypatch.setenv("SUPERCONVERGE_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_cached_decodes_once_and_again_when_the_source_changes(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"one")
    calls = []

    def decode(path):
        calls.append(path)
        return {"x": np.frombuffer(path.read_bytes(), np.uint8)}

    first = cached(source, decode, name="t", directory=tmp_path / "cache")
    again = cached(source, decode, name="t", directory=tmp_path / "cache")
    assert len(calls) == 1 and bytes(again["x"]) == bytes(first["x"]) == b"one"
    [entry] = (tmp_path / "cache").glob("t-*.npz")

    source.write_bytes(b"changed")
    changed = cached(source, decode, name="t", directory=tmp_path / "cache")
    assert len(calls) == 2 and bytes(changed["x"]) == b"changed"
    assert not entry.exists()  # the stale entry for this path is gone
    assert len(list((tmp_path / "cache").glob("t-*.npz"))) == 1


# --- epoch order -------------------------------------------------------------------------


def test_epoch_permutation_is_a_pure_function_of_seed_and_epoch():
    a = epoch_permutation(1000, seed=3, epoch=5)
    assert torch.equal(a, epoch_permutation(1000, seed=3, epoch=5))
    assert torch.equal(a.sort().values, torch.arange(1000))
    assert not torch.equal(a, epoch_permutation(1000, seed=3, epoch=6))
    assert not torch.equal(a, epoch_permutation(1000, seed=4, epoch=5))


def test_seeded_generator_keys_do_not_collide_on_trailing_zeros():
    draw = lambda *keys: torch.randint(0, 2**30, (4,), generator=seeded_generator(*keys))
    assert not torch.equal(draw(1, 2), draw(1, 2, 0))


# --- batches -----------------------------------------------------------------------------


def test_batches_cover_the_epoch_once_with_normalised_nchw():
    images, labels = data(50)
    out = list(batches(images, labels, 16, seed=1, epoch=0))
    assert [len(y) for _, y in out] == [16, 16, 16, 2]
    x, y = out[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    seen = torch.cat([y for _, y in out])
    assert torch.equal(seen.sort().values, labels)
    assert not torch.equal(seen, labels)  # shuffled
    assert torch.equal(x, to_input(images[y]))  # without augmentation, x is just images[y]


def test_batches_unshuffled_drop_last_and_dtype():
    images, labels = data(50)
    out = list(batches(images, labels, 16, shuffle=False, drop_last=True, dtype=torch.bfloat16))
    assert [y.tolist() for _, y in out] == [list(range(i, i + 16)) for i in (0, 16, 32)]
    assert out[0][0].dtype == torch.bfloat16


def test_batches_reproduce_and_resume_mid_epoch():
    images, labels = data(50)
    kwargs = dict(seed=7, epoch=3, augment=Augment(crop_padding=4, flip=True, cutout=8))
    full = list(batches(images, labels, 16, **kwargs))
    again = list(batches(images, labels, 16, **kwargs))
    resumed = list(batches(images, labels, 16, start_batch=2, **kwargs))
    for (xa, ya), (xb, yb) in zip(full, again):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for (xa, ya), (xb, yb) in zip(full[2:], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = next(iter(batches(images, labels, 16, **{**kwargs, "epoch": 4})))
    assert not torch.equal(other[1], full[0][1])


def test_batches_augment_changes_pixels_not_labels():
    images, labels = data(50)
    plain = list(batches(images, labels, 25, seed=0))
    augmented = list(batches(images, labels, 25, seed=0, augment=Augment()))
    for (xp, yp), (xa, ya) in zip(plain, augmented, strict=True):
        assert torch.equal(yp, ya) and xp.shape == xa.shape and not torch.equal(xp, xa)


def test_batches_argument_errors():
    images, labels = data(10)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        batches(images, labels, 0)  # fails at the call, not at the first batch
    with pytest.raises(ValueError, match="start_batch >= 0"):
        batches(images, labels, 4, start_batch=-1)
    with pytest.raises(ValueError, match="labels"):
        batches(images, labels[:5], 4)


# --- generic Dataset path ----------------------------------------------------------------


def test_loader_order_depends_only_on_seed_and_epoch():
    dataset = TensorDataset(torch.arange(100).float(), torch.arange(100))
    order = lambda **kw: torch.cat([y for _, y in loader(dataset, 10, **kw)])
    assert torch.equal(order(seed=1, epoch=2), order(seed=1, epoch=2))
    assert not torch.equal(order(seed=1, epoch=2), order(seed=1, epoch=3))
    assert torch.equal(order(shuffle=False), torch.arange(100))
