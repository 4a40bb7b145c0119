"""Images per second of ``fit`` against a bare PyTorch loop on the same model, data and precision.

Both loops draw the same augmented batches from the shipped CIFAR-10 sample and train the
same thing: every round starts both from one saved model and optimizer state and runs the
same 1cycle (the bare loop with PyTorch's OneCycleLR, ``fit`` with ours), so both see the
same weights, and with them the same kernel speeds. The bare loop has nothing else: no
records, no divergence guard, no accuracy count. The order alternates (bare-fit, fit-bare)
and each round's fit/bare ratio is reported, paired. Run by hand, alone on the machine:

    python bench/fit_overhead.py [--models tiny resnet20] [--rounds 6] [--epochs 2] [--batch-size 128]
    python bench/fit_overhead.py --precision fp32     # default: what "auto" picks on this CPU
"""

from __future__ import annotations

import argparse
import copy
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
from superconverge.train.runtime import autocast, resolve_precision

MAX_LR = 0.1


def bare_epochs(model, feed, opt, epochs: int, precision: str) -> float:
    start, n = time.perf_counter(), 0
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, MAX_LR, total_steps=epochs * len(feed))
    device = torch.device("cpu")
    model.train()
    for epoch in range(epochs):
        for x, y in feed(epoch):
            with autocast(device, precision):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n += len(y)
    return n / (time.perf_counter() - start)


def fit_epochs(model, feed, opt, epochs: int, precision: str) -> float:
    start = time.perf_counter()
    fit(model, opt, one_cycle(epochs * len(feed), MAX_LR), feed, epochs=epochs,
        options=FitOptions(progress=False, precision=precision, channels_last=True))
    return epochs * len(feed.images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "resnet20"])
    parser.add_argument("--rounds", type=int, default=6, help="rounds; even, so each order runs equally often")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    precision = resolve_precision(args.precision, torch.device("cpu"))
    torch.set_num_threads(2)
    data = load_sample()
    feed = ArrayFeed(torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels), args.batch_size,
                     augment=Augment(crop_padding=4, flip=True), seed=0, channels_last=True)
    print(f"{len(feed.images)} images per epoch, batch {args.batch_size}, {precision}, channels_last, "
          f"{torch.get_num_threads()} threads; {args.rounds} rounds of {args.epochs} epochs per loop")
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=MAX_LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
        bare_epochs(model, feed, opt, 1, precision)  # warm-up: oneDNN picks its kernels on first use
        start = copy.deepcopy((model.state_dict(), opt.state_dict()))

        def run(loop) -> float:
            model.load_state_dict(start[0])
            opt.load_state_dict(start[1])
            return loop(model, feed, opt, args.epochs, precision)

        bare, ours = [], []
        for i in range(args.rounds):
            if i % 2 == 0:
                bare.append(run(bare_epochs))
                ours.append(run(fit_epochs))
            else:
                ours.append(run(fit_epochs))
                bare.append(run(bare_epochs))
        ratios = [o / b for o, b in zip(ours, bare)]
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"{name:<10} bare loop {b:7.0f} img/s   fit {o:7.0f} img/s   fit/bare, median of paired rounds "
              f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})\n"
              f"           rounds: bare {[round(v) for v in bare]}, fit {[round(v) for v in ours]}")


if __name__ == "__main__":
    main()
