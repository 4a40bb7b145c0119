"""Augment batches of uint8 images on the CPU: random crop, flip, cutout, then normalise.

Batches stay uint8 NHWC, shape (N, H, W, C), the layout the data is stored in, until
`to_input` turns them into normalised NCHW floats: moving uint8 around is 4x less memory
traffic than float32. Every function is pure and vectorised over the batch, and every
random draw comes from an explicit `torch.Generator`, so equal seeds give equal batches.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    >>> augment(x, Augment(crop_padding=4, flip=True, cutout=8), generator=g).shape
    torch.Size([8, 32, 32, 3])
    >>> to_input(x).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

# Per-channel statistics of the CIFAR-10 train split, pixel values scaled to [0, 1].
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Augment:
    """Which random augmentations to apply, in this order: crop, flip, cutout."""

    crop_padding: int = 4  # pixels of reflection padding before the random crop; 0 = no crop
    # True: mirror a random half of each batch. "alternate": mirror a random half of the
    # images in even epochs and exactly the other half in odd ones (see `alternating_flip`).
    flip: bool | Literal["alternate"] = True
    cutout: int = 0  # side in pixels of the square set to the mean colour; 0 = no cutout

    def __post_init__(self) -> None:
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, got {self}")
        if self.flip not in (True, False, "alternate"):
            raise ValueError(f"flip must be true, false or 'alternate', got {self.flip!r}")


def augment(x: torch.Tensor, config: Augment, *, generator: torch.Generator) -> torch.Tensor:
    """Apply the augmentations `config` turns on to a uint8 NHWC batch."""
    if config.crop_padding:
        x = random_crop(x, config.crop_padding, generator=generator)
    if config.flip is True:  # "alternate" needs image indices: `batches` applies it
        x = random_flip(x, generator=generator)
    if config.cutout:
        x = cutout(x, config.cutout, generator=generator)
    return x


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad H and W of an NHWC batch by `pad` pixels, mirrored without repeating the edge."""
    _check(x)
    rows = _reflect_index(x.shape[1], pad, x.device)
    cols = _reflect_index(x.shape[2], pad, x.device)
    return x[:, rows[:, None], cols[None, :]]


def random_crop(x: torch.Tensor, pad: int = 4, *, generator: torch.Generator) -> torch.Tensor:
    """Crop each image at a random offset from its reflection padding; output size = input size.

    Equal to cropping `reflect_pad(x, pad)[i, dy:dy+H, dx:dx+W]` with per-image offsets
    dy, dx uniform in [0, 2*pad], done as one gather of whole pixels that indexes through
    the reflection map, so the padded batch is never built (3x faster than fancy indexing).
    """
    _check(x)
    n, h, w, c = x.shape
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator).to(x.device)
    rows = _reflect_index(h, pad, x.device)[dy[:, None] + torch.arange(h, device=x.device)]
    cols = _reflect_index(w, pad, x.device)[dx[:, None] + torch.arange(w, device=x.device)]
    batch = torch.arange(n, device=x.device)[:, None, None]
    pixel = (batch * h + rows[:, :, None]) * w + cols[:, None, :]  # (N, H, W) flat pixel index
    return x.reshape(n * h * w, c).index_select(0, pixel.reshape(-1)).reshape(n, h, w, c)


def random_flip(x: torch.Tensor, p: float = 0.5, *, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability `p`."""
    _check(x)
    flip = (torch.rand(x.shape[0], generator=generator) < p).to(x.device)
    # Flipping the whole batch and selecting is cheaper than indexing a random subset.
    return torch.where(flip[:, None, None, None], x.flip(2), x)


def alternating_flip(x: torch.Tensor, index: torch.Tensor, epoch: int | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Mirror image ``index[i]`` in epoch ``e`` iff ``b[index[i]] xor (e odd)``, ``b`` a fixed random bit.

    Every image is seen mirrored and unmirrored in every pair of epochs, instead of by
    coin flips that leave some images unmirrored for many epochs in a row (the
    "derandomized" flip of Jordan 2024, worth a few percent fewer epochs to a target).
    ``b`` is a hash of (seed, image index), so it needs no state and no data-set size.
    ``epoch`` may also be a tensor of one count per image (how often each was seen before),
    for feeds that do not show every image in every epoch.
    """
    _check(x)
    mixed = (index.to(torch.int64) * 2654435761 + (seed * 40503 + 12345)) % (1 << 32)  # Knuth's hash
    base = ((mixed >> 15) & 1).bool()
    odd = (epoch % 2).bool().to(base.device) if isinstance(epoch, torch.Tensor) else bool(epoch % 2)
    flip = (base ^ odd).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(2), x)


def cutout(
    x: torch.Tensor,
    size: int,
    *,
    generator: torch.Generator,
    fill: Literal["mean", "zero"] = "mean",
    mean: tuple[float, ...] = CIFAR10_MEAN,
) -> torch.Tensor:
    """Set a `size` x `size` square at a random centre of each image to the mean colour (or 0).

    The centre is uniform over the image and the square is clipped at the border, as in
    DeVries & Taylor (2017). The mean colour becomes ~0 after `to_input`, which is what
    cutout on normalised inputs does.
    """
    _check(x)
    n, h, w, c = x.shape
    cy = torch.randint(0, h, (n,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (n,), generator=generator).to(x.device)
    top, left = cy - size // 2, cx - size // 2
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size)  # (N, H)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size)  # (N, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
    value = [round(255 * m) for m in mean] if fill == "mean" else [0] * c
    out = x.clone()  # writing through the mask is 3x faster than torch.where
    out[mask] = torch.tensor(value, dtype=x.dtype, device=x.device)
    return out


def to_input(
    x: torch.Tensor,
    *,
    mean: tuple[float, ...] = CIFAR10_MEAN,
    std: tuple[float, ...] = CIFAR10_STD,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    """Normalise a uint8 NHWC batch per channel and return it as NCHW `dtype`.

    y = (x / 255 - mean) / std, computed in float32 and then cast (bfloat16 keeps ~3
    significant digits, enough for inputs but not for the arithmetic).
    """
    _check(x)
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=x.device)
    y = torch.addcmul(shift, x.to(torch.float32), scale).to(dtype)
    # NHWC memory viewed as NCHW is exactly the channels_last layout: free when asked for.
    y = y.permute(0, 3, 1, 2)
    return y if channels_last else y.contiguous()


def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source index of each of the n + 2*pad padded positions: -1 -> 1, n -> n-2."""
    if not 0 <= pad < n:
        raise ValueError(f"reflection padding must be in [0, {n}) for size {n}, got {pad}")
    i = torch.arange(-pad, n + pad, device=device).abs()
    return (n - 1) - ((n - 1) - i).abs()


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.dtype != torch.uint8:
        raise ValueError(
            f"expected a uint8 NHWC batch (N, H, W, C), got {x.dtype} of shape {tuple(x.shape)}"
        )
