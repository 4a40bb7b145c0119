"""Evaluation throughput of the speedrun network by batch size, side by side in one process.

The final evaluation is counted in a speedrun's total time, and on a CPU the batch that is
fastest for a forward pass alone (no activations kept for a backward pass) is far smaller
than the training batch: what matters is that a layer's output stays in cache. Each line is
images/s of forward passes over ``--images`` random images, best of ``--repeats``, under the
precision "auto" picks here and channels_last, as ``speedrun.run.evaluate_tta`` runs them.
Run alone on the machine:

    python bench/speedrun_eval.py
    python bench/speedrun_eval.py --widths 64 256 256 --batches 128 256 512 2000
"""

from __future__ import annotations

import argparse
import time

import torch

from superconverge.speedrun.net import SpeedNet
from superconverge.train.runtime import autocast, pick_device, resolve_precision


def throughput(net: torch.nn.Module, images: torch.Tensor, batch: int, precision: str, repeats: int) -> float:
    best = float("inf")
    with torch.no_grad(), autocast(images.device, precision):  # type: ignore[arg-type]
        net(images[:batch])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(images), batch):
                net(images[i:i + batch]).float()
            best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs=3, default=[64, 192, 192])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 250, 500, 1000, 2000])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device("auto")
    precision = resolve_precision("auto", device)
    torch.manual_seed(0)
    net = SpeedNet(tuple(args.widths)).eval().to(device, memory_format=torch.channels_last)
    images = torch.randn(args.images, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    print(f"widths {args.widths}, {precision}, {torch.get_num_threads()} threads, {args.images} images")
    rates = {b: throughput(net, images, b, precision, args.repeats) for b in args.batches}
    fastest = max(rates.values())
    for batch, rate in rates.items():
        print(f"  batch {batch:5d}: {rate:7.0f} img/s  ({rate / fastest:.2f}x the fastest)")


if __name__ == "__main__":
    main()
