"""The tasks of the finder benchmark (bench/finder_suite.py): small, of different families, real data
where the package or scikit-learn ships it.

Each task builds its model, its data and its loss from a seed, so a run is a function of
(task, seed, optimizer, LR schedule) alone. Families (for leave-one-family-out validation):

| family | tasks | data |
|---|---|---|
| conv-bn | cifar-bn-sgd, cifar-bn-adamw | the shipped CIFAR-10 sample (5,000 / 1,000 images) |
| conv-plain | cifar-plain-sgd | the same, a conv net without normalisation |
| mlp-cls | digits-sgd, digits-adamw | scikit-learn's handwritten digits (1,797 8x8 images) |
| mlp-reg | friedman-sgd, friedman-adamw | scikit-learn's Friedman #1 regression (synthetic, noise 1.0) |
| rnn-lm | gru-lm-adamw | character LM on text of Python's standard library modules |
| transformer-lm | tfm-lm-adamw | the same text, a 2-layer causal transformer |
| conv1d | motif-sgd | synthetic sequences: which of four motifs hides in noise |

Metrics: test accuracy (classification, in points) or test loss (regression MSE, LM nats/char;
compared as relative excess).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Task:
    name: str
    family: str
    optimizer: str  # "sgd" or "adamw" (1cycle cycles momentum / beta1 0.95 -> 0.85 -> 0.95)
    batch: int
    epochs: int
    weight_decay: float
    metric: str  # "accuracy" (higher is better) or "loss" (lower is better)
    grid: tuple[float, ...]  # peak LRs of the 1cycle grid
    build: Callable[[], nn.Module]
    data: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def steps_per_epoch(self) -> int:
        return len(self.data()[1]) // self.batch

    def batches(self, seed: int) -> Iterator[Batch]:
        """Shuffled training batches, epoch after epoch; the order is a function of the seed only."""
        x, y, _, _ = self.data()
        gen = torch.Generator().manual_seed(10_000 + seed)
        while True:
            order = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y) - self.batch + 1, self.batch):
                idx = order[i:i + self.batch]
                xb = x[idx] if self.augment is None else self.augment(x[idx], gen)
                yield xb, y[idx]

    @torch.no_grad()
    def score(self, model: nn.Module) -> float:
        """Test accuracy or test loss of ``model``."""
        _, _, x, y = self.data()
        model.eval()
        total, n = 0.0, 0
        for i in range(0, len(y), 1000):
            out, target = model(x[i:i + 1000]), y[i:i + 1000]
            if self.metric == "accuracy":
                total += (out.argmax(1) == target).sum().item()
            else:
                total += self.loss(out, target).item() * len(target)
            n += len(target)
        model.train()
        return total / n


SGD_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)


# -- data --------------------------------------------------------------------------------------

@cache
def cifar() -> tuple[torch.Tensor, ...]:
    from superconverge.train.cifar import load_sample

    data = load_sample()
    mean = data.train_images.reshape(-1, 3).mean(0)
    std = data.train_images.reshape(-1, 3).std(0)

    def prep(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((images - mean) / std).astype(np.float32)).permute(0, 3, 1, 2).contiguous()

    return (prep(data.train_images), torch.from_numpy(data.train_labels), prep(data.test_images),
            torch.from_numpy(data.test_labels))


def flip_crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random mirror and a random translation of up to 2 pixels (zero padding)."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(F.pad(x, (2, 2, 2, 2)), shifts=(dy, dx), dims=(2, 3))[:, :, 2:-2, 2:-2]


@cache
def digits() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1297], y[:1297], x[1297:], y[1297:]


@cache
def friedman() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=6000, n_features=10, noise=1.0, random_state=0)
    x = torch.tensor((x - 0.5) / 0.29, dtype=torch.float32)
    y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    return x[:4000], y[:4000], x[4000:], y[4000:]


@cache
def text() -> tuple[torch.Tensor, ...]:
    """Character windows of the source text of a few standard-library modules (bytes, 0-255)."""
    import argparse
    import textwrap
    import unittest.case

    raw = b"".join(Path(m.__file__).read_bytes() for m in (argparse, textwrap, unittest.case))
    ids = torch.tensor(list(raw), dtype=torch.long)
    split = int(0.9 * len(ids))
    return (*windows(ids[:split], 64, 32), *windows(ids[split:], 64, 64))


def windows(ids: torch.Tensor, length: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.arange(0, len(ids) - length - 1, stride)
    x = torch.stack([ids[s:s + length] for s in starts])
    y = torch.stack([ids[s + 1:s + length + 1] for s in starts])
    return x, y


@cache
def motifs() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    patterns = torch.randn(4, 12, generator=gen)
    n, length = 6000, 96
    y = torch.randint(0, 4, (n,), generator=gen)
    x = torch.randn(n, 1, length, generator=gen)
    at = torch.randint(0, length - 12, (n,), generator=gen)
    for i in range(n):
        x[i, 0, at[i]:at[i] + 12] += 1.2 * patterns[y[i]]
    return x[:4000], y[:4000], x[4000:], y[4000:]


# -- models ------------------------------------------------------------------------------------

def conv_net(norm: bool) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=not norm), *([nn.BatchNorm2d(cout)] if norm else []),
                nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(3, 24), *block(24, 48), *block(48, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def mlp(inputs: int, outputs: int, width: int = 128) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, outputs))


class Squeeze(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class GRULM(nn.Module):
    def __init__(self, vocab: int = 256, width: int = 128) -> None:
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(vocab, 48), nn.GRU(48, width, batch_first=True), \
            nn.Linear(width, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0]).flatten(0, 1)  # (batch * time, vocab)


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = 256, width: int = 64, layers: int = 2, length: int = 64) -> None:
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, width), nn.Parameter(torch.zeros(length, width))
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.body(self.embed(x) + self.pos[:t], mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h)).flatten(0, 1)


def conv1d() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 32, 7, padding=3), nn.ReLU(), nn.Conv1d(32, 32, 7, padding=3), nn.ReLU(),
                         nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, 4))


def lm_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y.flatten())


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out, y)


TASKS = [
    Task("cifar-bn-sgd", "conv-bn", "sgd", 64, 4, 5e-4, "accuracy", SGD_GRID, lambda: conv_net(True), cifar,
         augment=flip_crop),
    Task("cifar-bn-adamw", "conv-bn", "adamw", 128, 4, 5e-2, "accuracy", ADAM_GRID, lambda: conv_net(True), cifar,
         augment=flip_crop),
    Task("cifar-plain-sgd", "conv-plain", "sgd", 64, 4, 5e-4, "accuracy", SGD_GRID, lambda: conv_net(False), cifar,
         augment=flip_crop),
    Task("digits-sgd", "mlp-cls", "sgd", 32, 6, 0.0, "accuracy", SGD_GRID, lambda: mlp(64, 10), digits),
    Task("digits-adamw", "mlp-cls", "adamw", 128, 15, 1e-2, "accuracy", ADAM_GRID, lambda: mlp(64, 10), digits),
    Task("friedman-sgd", "mlp-reg", "sgd", 64, 5, 0.0, "loss", SGD_GRID, lambda: Squeeze(mlp(10, 1)), friedman,
         loss=mse),
    Task("friedman-adamw", "mlp-reg", "adamw", 256, 20, 1e-4, "loss", ADAM_GRID, lambda: Squeeze(mlp(10, 1)),
         friedman, loss=mse),
    Task("gru-lm-adamw", "rnn-lm", "adamw", 32, 1, 1e-2, "loss", ADAM_GRID, GRULM, text, loss=lm_loss),
    Task("tfm-lm-adamw", "transformer-lm", "adamw", 32, 1, 1e-2, "loss", ADAM_GRID, TinyGPT, text, loss=lm_loss),
    Task("motif-sgd", "conv1d", "sgd", 64, 3, 5e-4, "accuracy", SGD_GRID, conv1d, motifs),
    Task("motif-adamw", "conv1d", "adamw", 128, 6, 1e-2, "accuracy", ADAM_GRID, conv1d, motifs),
]
BY_NAME = {t.name: t for t in TASKS}


def untrained_score(task: Task, seed: int) -> float:
    """The metric of the initial weights: what a diverged run is scored as."""
    torch.manual_seed(seed)
    return task.score(task.build())


assert all(math.isfinite(v) for t in TASKS for v in t.grid)
