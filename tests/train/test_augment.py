"""Augmentation: shapes, each transform against a plain reference, seeding, normalisation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from superconverge.train.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Augment,
    augment,
    cutout,
    random_crop,
    random_flip,
    reflect_pad,
    to_input,
)


def images(n: int = 16, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- shapes and dtypes -------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        lambda x, g: random_crop(x, 4, generator=g),
        lambda x, g: random_flip(x, generator=g),
        lambda x, g: cutout(x, 8, generator=g),
        lambda x, g: augment(x, Augment(crop_padding=4, flip=True, cutout=12), generator=g),
    ],
)
def test_transforms_keep_shape_and_dtype(transform):
    x = images()
    y = transform(x, gen())
    assert y.shape == x.shape and y.dtype == torch.uint8


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_to_input_layout(dtype, channels_last):
    y = to_input(images(4), dtype=dtype, channels_last=channels_last)
    assert y.shape == (4, 3, 32, 32) and y.dtype == dtype
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)


def test_rejects_non_uint8_nhwc():
    with pytest.raises(ValueError, match="uint8 NHWC"):
        random_flip(torch.zeros(2, 3, 32, 32), generator=gen())
    with pytest.raises(ValueError, match="reflection padding"):
        random_crop(images(2), 32, generator=gen())
    with pytest.raises(ValueError, match=">= 0"):
        Augment(cutout=-1)


# --- each transform against a reference --------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(h=st.integers(2, 12), w=st.integers(2, 12), pad=st.integers(0, 11))
def test_reflect_pad_matches_numpy(h, w, pad):
    pad = min(pad, h - 1, w - 1)
    x = images(2, h, w)
    expected = np.pad(x.numpy(), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(reflect_pad(x, pad).numpy(), expected)


def test_reflect_pad_matches_torch_pad():
    x = images(3)
    nchw = F.pad(x.permute(0, 3, 1, 2).float(), (4, 4, 4, 4), mode="reflect")
    assert torch.equal(reflect_pad(x, 4).float(), nchw.permute(0, 2, 3, 1))


def test_crop_is_a_window_of_the_reflect_padded_image():
    x = images(32)
    padded = np.pad(x.numpy(), ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    y = random_crop(x, 4, generator=gen()).numpy()
    offsets = set()
    for i in range(len(x)):
        windows = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if np.array_equal(y[i], padded[i, dy : dy + 32, dx : dx + 32])
        ]
        assert len(windows) == 1  # random pixels: exactly one window matches
        offsets.add(windows[0])
    assert len(offsets) > 10  # offsets are drawn per image


def test_crop_without_padding_is_identity():
    x = images()
    assert torch.equal(random_crop(x, 0, generator=gen()), x)


def test_flip_is_a_flip():
    x = images(64)
    assert torch.equal(random_flip(x, 1.0, generator=gen()), x.flip(2))
    assert torch.equal(random_flip(x, 0.0, generator=gen()), x)
    y = random_flip(x, generator=gen())
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(1)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert torch.all(flipped ^ kept)
    assert 16 < flipped.sum() < 48  # about half, drawn per image


@pytest.mark.parametrize("fill", ["mean", "zero"])
def test_cutout_fills_one_clipped_square(fill):
    x = torch.full((64, 32, 32, 3), 7, dtype=torch.uint8)
    y = cutout(x, 8, generator=gen(), fill=fill)
    value = torch.tensor([round(255 * m) for m in CIFAR10_MEAN] if fill == "mean" else [0, 0, 0])
    areas = []
    for i in range(len(x)):
        changed = (y[i] != 7).all(-1)
        rows, cols = changed.any(1).nonzero(), changed.any(0).nonzero()
        assert changed.sum() == len(rows) * len(cols)  # a rectangle...
        assert len(rows) <= 8 and len(cols) <= 8  # ...of at most size x size (clipped at edges)
        assert torch.equal(y[i][changed], value.to(torch.uint8).expand(int(changed.sum()), 3))
        areas.append(int(changed.sum()))
    assert max(areas) == 64 and min(areas) < 64  # whole squares inside, clipped at borders


# --- seeding -----------------------------------------------------------------------------


def test_same_seed_same_output_different_seed_differs():
    x = images(64)
    config = Augment(crop_padding=4, flip=True, cutout=8)
    a = augment(x, config, generator=gen(1))
    b = augment(x, config, generator=gen(1))
    c = augment(x, config, generator=gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --- normalisation -----------------------------------------------------------------------


def test_to_input_formula():
    x = images(4)
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.double)[:, None, None]
    std = torch.tensor(CIFAR10_STD, dtype=torch.double)[:, None, None]
    expected = (x.permute(0, 3, 1, 2).double() / 255 - mean) / std
    torch.testing.assert_close(to_input(x).double(), expected, atol=1e-5, rtol=1e-5)


def test_to_input_standardises_with_the_data_statistics():
    x = images(256)
    pixels = x.reshape(-1, 3).double() / 255
    mean, std = pixels.mean(0).tolist(), pixels.std(0).tolist()
    y = to_input(x, mean=mean, std=std).double()
    zeros, ones = torch.zeros(3, dtype=torch.double), torch.ones(3, dtype=torch.double)
    torch.testing.assert_close(y.mean((0, 2, 3)), zeros, atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3)), ones, atol=1e-4, rtol=0)


def test_to_input_bfloat16_is_close_to_float32():
    x = images(8)
    torch.testing.assert_close(
        to_input(x, dtype=torch.bfloat16).float(), to_input(x), atol=0.02, rtol=0.01
    )


def test_alternating_flip_mirrors_each_image_in_exactly_one_of_two_epochs():
    from superconverge.train.augment import alternating_flip

    x = torch.randint(0, 256, (500, 4, 4, 3), dtype=torch.uint8)
    x[:, :, 0] = 0  # make every image asymmetric so a mirror is visible
    x[:, :, -1] = 255
    index = torch.arange(500)
    even, odd = (alternating_flip(x, index, e, seed=3) for e in (4, 7))
    mirrored_even = (even != x).flatten(1).any(1)
    mirrored_odd = (odd != x).flatten(1).any(1)
    assert torch.equal(mirrored_even, ~mirrored_odd)
    assert 200 < int(mirrored_even.sum()) < 300  # about half of them
    assert torch.equal(even[mirrored_even], x[mirrored_even].flip(2))
    # depends on the image index, not on its place in the batch
    perm = torch.randperm(500)
    assert torch.equal(alternating_flip(x[perm], index[perm], 4, seed=3), even[perm])
    assert not torch.equal(alternating_flip(x, index, 4, seed=4), even)


def test_batches_apply_the_alternating_flip():
    from superconverge.train.augment import Augment
    from superconverge.train.data import batches

    images = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8)
    labels = torch.arange(64)
    config = Augment(crop_padding=0, flip="alternate")
    (x0, y0), = batches(images, labels, 64, augment=config, epoch=0, seed=1)
    (x1, y1), = batches(images, labels, 64, augment=config, epoch=1, seed=1)
    from superconverge.train.augment import to_input

    plain = to_input(images)
    same0 = (x0[y0.argsort()] == plain).flatten(1).all(1)
    same1 = (x1[y1.argsort()] == plain).flatten(1).all(1)
    # each image is seen as it is in one of the two epochs and mirrored in the other
    assert torch.equal(same0, ~same1) and 0 < int(same0.sum()) < 64
    assert torch.equal(x0[y0.argsort()][~same0], plain[~same0].flip(3))


def test_augment_rejects_an_unknown_flip_mode():
    from superconverge.train.augment import Augment

    with pytest.raises(ValueError, match="flip must be"):
        Augment(flip="sometimes")  # type: ignore[arg-type]
