"""Images per second of ``fit`` against a bare PyTorch loop on the same model, data and precision.

Both loops draw the same augmented batches from the shipped CIFAR-10 sample; the bare
loop has no scheduler, no records, no divergence guard. Rounds alternate between the
two so that both see the same machine state. Run by hand:

    python bench/fit_overhead.py [--models tiny resnet20] [--rounds 5] [--epochs 2] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from superconverge.schedules import one_cycle
from superconverge.train.augment import Augment
from superconverge.train.cifar import load_sample
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import FitOptions, fit
from superconverge.train.models import build_model


def bare_epochs(model, feed, opt, epochs: int) -> float:
    start, n = time.perf_counter(), 0
    model.train()
    for epoch in range(epochs):
        for x, y in feed(epoch):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
    return n / (time.perf_counter() - start)


def fit_epochs(model, feed, opt, epochs: int) -> float:
    start = time.perf_counter()
    fit(model, opt, one_cycle(epochs * len(feed), 0.1), feed, epochs=epochs,
        options=FitOptions(progress=False, precision="fp32", channels_last=True))
    return epochs * len(feed.images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "resnet20"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_sample()
    feed = ArrayFeed(torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels), args.batch_size,
                     augment=Augment(crop_padding=4, flip=True), seed=0, channels_last=True)
    print(f"{len(feed.images)} images per epoch, batch {args.batch_size}, fp32, channels_last, 2 threads")
    for name in args.models:
        model = build_model(name).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        bare_epochs(model, feed, opt, 1)  # warm-up: oneDNN picks its kernels on first use
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(bare_epochs(model, feed, opt, args.epochs))
            ours.append(fit_epochs(model, feed, opt, args.epochs))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"{name:<10} bare loop {b:7.0f} img/s   fit {o:7.0f} img/s   fit/bare {o / b:.3f}"
              f"   (rounds: bare {[round(v) for v in bare]}, fit {[round(v) for v in ours]})")


if __name__ == "__main__":
    main()
