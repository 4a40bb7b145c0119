"""Training throughput of the speedrun network under each CPU lever, side by side in one process.

Levers: width, batch size, channels_last, torch.compile, precision, input resolution.
Each line is images/s of full training steps (forward, backward, SGD) on random data,
median of ``--steps`` timed steps after warm-up. Run alone on the machine:

    python bench/speedrun_levers.py                     # base precision: what "auto" picks here
    python bench/speedrun_levers.py --precision fp32    # the same levers in fp32
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from superconverge.speedrun.net import SpeedNet, flops_per_image
from superconverge.train.runtime import autocast, resolve_precision

BASE = dict(widths=(64, 256, 256), batch=1024, channels_last=True, compile=False, precision="fp32", size=32,
            whiten_bias=True)
VARIANTS = [
    {},
    dict(channels_last=False),
    dict(batch=512),
    dict(batch=256),
    dict(compile=True),
    dict(widths=(64, 192, 192)),
    dict(widths=(64, 128, 128)),
    dict(widths=(48, 192, 192)),
    dict(size=24),
    dict(size=28),
    dict(precision="other"),  # the other precision than the base: fp32 <-> bf16
    # combinations the recipes use
    dict(widths=(64, 192, 192), batch=512),
    dict(widths=(64, 192, 192), batch=256),
    dict(widths=(64, 192, 192), batch=256, size=24),
    dict(widths=(64, 256, 256), batch=256, size=24),
    dict(widths=(64, 128, 128), batch=256),
    # the whitening bias frozen (as after its first epochs): no gradient for the first block's input
    dict(widths=(64, 192, 192), batch=512, whiten_bias=False),
    dict(widths=(64, 192, 192), batch=512, whiten_bias=True),
    # cpu94's widths against the first block narrowed to 32 and the last widened to 256 (after the bias freezes)
    dict(widths=(48, 192, 192), batch=512, whiten_bias=False),
    dict(widths=(32, 192, 256), batch=512, whiten_bias=False),
    dict(widths=(48, 192, 192), batch=512, whiten_bias=False, size=24),
    dict(widths=(32, 192, 256), batch=512, whiten_bias=False, size=24),
]


def measure(widths, batch, channels_last, compile, precision, size, whiten_bias, steps) -> tuple[float, float]:
    torch.manual_seed(0)
    net = SpeedNet(widths)
    net.whiten.bias.requires_grad_(whiten_bias)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    flops = flops_per_image(net, size)["train"]
    model = torch.compile(net) if compile else net
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.85, nesterov=True)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    times = []
    for i in range(steps + 2):
        tick = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.2)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - tick)
    seconds = statistics.median(times)
    return batch / seconds, flops * batch / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="precision of the base (default: what auto picks on this CPU)")
    parser.add_argument("--only", nargs="*", type=int, help="indices of VARIANTS to run (0 = base)")
    parser.add_argument("--pair", nargs=2, type=int, metavar=("I", "J"),
                        help="measure variants I and J alternately, --rounds times, and print their paired ratio")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.pair:
        return pair(args)
    base = base_config(args)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; base {base}")
    base_rate = None
    for index, change in enumerate(VARIANTS):
        if args.only and index not in args.only and index != 0:
            continue
        change = variant(base, change)
        config = {**base, **change}
        rate, gflops = measure(**config, steps=args.steps)
        base_rate = base_rate or rate
        label = ", ".join(f"{k}={v}" for k, v in change.items()) or "base"
        print(f"  {label:<28} {rate:7.1f} img/s  {rate / base_rate:5.2f}x  {gflops:6.1f} GFLOP/s "
              f"({50000 / rate:6.1f} s per 50k-image epoch)", flush=True)


def base_config(args: argparse.Namespace) -> dict:
    return {**BASE, "precision": resolve_precision(args.precision, torch.device("cpu"))}


def variant(base: dict, change: dict) -> dict:
    """``change`` with ``precision="other"`` made concrete: the other precision than the base's."""
    other = "fp32" if base["precision"] == "bf16" else "bf16"
    return {k: other if v == "other" else v for k, v in change.items()}


def pair(args: argparse.Namespace) -> None:
    """Variants I and J measured in alternation: machine drift hits both alike."""
    base = base_config(args)
    configs = [{**base, **variant(base, VARIANTS[i])} for i in args.pair]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.rounds} rounds of "
          f"{args.steps} steps; I = {VARIANTS[args.pair[0]]}, J = {VARIANTS[args.pair[1]]} (on {base})")
    rates: list[list[float]] = [[], []]
    for r in range(args.rounds):
        for k in (0, 1) if r % 2 == 0 else (1, 0):
            rates[k].append(measure(**configs[k], steps=args.steps)[0])
    ratios = [a / b for a, b in zip(*rates)]
    print(f"  I {statistics.median(rates[0]):7.1f} img/s, J {statistics.median(rates[1]):7.1f} img/s; "
          f"I/J median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
