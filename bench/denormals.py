"""Does flushing denormal floats to zero speed up real CPU training? Side by side on one model.

Trains the speedrun network (airbench94 recipe) on real CIFAR-10 batches for ``--warm``
steps, then alternates pairs of steps with ``torch.set_flush_denormal`` off and on, so both
conditions see the same model state and machine, and prints the median step time of each.

    python bench/denormals.py --data ../shared/datasets/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from superconverge.speedrun import load_recipe
from superconverge.speedrun.run import build
from superconverge.train.augment import Augment
from superconverge.train.cifar import load_cifar10
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import cross_entropy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--warm", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    data = load_cifar10(args.data)
    images = torch.from_numpy(data.train_images[:16384])
    labels = torch.from_numpy(data.train_labels[:16384])
    recipe = load_recipe("airbench94")
    feed = ArrayFeed(images, labels, args.batch_size, Augment(2, "alternate"), seed=0)
    total = args.warm + 4 * args.rounds
    net, opt, sched = build(recipe, images, total, seed=0, device=torch.device("cpu"))
    net.to(memory_format=torch.channels_last)
    loss_fn = cross_entropy(recipe.label_smoothing)

    def batches():
        epoch = 0
        while True:
            yield from feed(epoch)
            epoch += 1

    stream = batches()

    def step() -> float:
        x, y = next(stream)
        tick = time.perf_counter()
        loss_fn(net(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        return time.perf_counter() - tick

    for _ in range(args.warm):
        step()
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            times[flush] += [step(), step()]
    torch.set_flush_denormal(False)
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"batch {args.batch_size}, {torch.get_num_threads()} threads, after {args.warm} warm-up steps:")
    print(f"  denormals kept    {1000 * off:8.1f} ms/step  ({args.batch_size / off:6.1f} img/s)")
    print(f"  denormals flushed {1000 * on:8.1f} ms/step  ({args.batch_size / on:6.1f} img/s)  {off / on:.3f}x")


if __name__ == "__main__":
    main()
