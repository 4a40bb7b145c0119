"""Each convolution of the speedrun network timed alone: forward, input gradient, weight gradient.

For the recipe's widths at one batch size and input size, every 3x3 convolution's shape is
run as one bf16, channels_last layer on random data (freed memory kept, as the command line
does), and the three passes of a training step are timed apart (median of ``--repeats`` after
two warm-up calls), with the GFLOP/s each reaches. It shows which layer shapes the CPU's conv
kernels handle well and which they do not; the weight gradient is the one to watch.
Run alone on the machine:

    python bench/speedrun_conv_layers.py                        # cpu94 at 32 px, batch 512
    python bench/speedrun_conv_layers.py --size 24 --set 'widths=[48,128,192]'
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from collections.abc import Callable

import torch

from superconverge.speedrun.recipe import load_recipe
from superconverge.train.allocator import keep_freed_memory


def conv_shapes(widths: tuple[int, int, int], convs: tuple[int, int, int], whiten_width: int,
                size: int) -> list[tuple[str, int, int, int]]:
    """(name, in channels, out channels, side) of every 3x3 conv, in order."""
    side, c_in, shapes = size - 1, whiten_width, []  # the 2x2 whitening conv has no padding
    for block, (width, n) in enumerate(zip(widths, convs), start=1):
        shapes.append((f"block{block}.conv1", c_in, width, side))
        side //= 2  # the max-pool after the first conv
        shapes += [(f"block{block}.conv{i}", width, width, side) for i in range(2, n + 1)]
        c_in = width
    return shapes


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn(), fn()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cpu94")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch", type=int, default=None, help="default: the recipe's batch size")
    parser.add_argument("--size", type=int, default=32, help="input side in pixels")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    kept = keep_freed_memory()
    recipe = load_recipe(args.recipe)
    recipe = recipe.replace(**{k: v for item in args.set for k, v in tomllib.loads(item).items()})
    batch = args.batch or recipe.batch_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16, channels_last; widths "
          f"{list(recipe.widths)}, convs {list(recipe.convs)}, batch {batch}, {args.size} px; "
          f"{'freed memory kept' if kept else 'default malloc'}")
    print("| conv | shape | forward ms (GFLOP/s) | input grad ms (GFLOP/s) | weight grad ms (GFLOP/s) |")
    print("|---|---|---:|---:|---:|")
    totals = [0.0, 0.0, 0.0]
    torch.manual_seed(0)
    for name, c_in, c_out, side in conv_shapes(recipe.widths, recipe.convs, recipe.whiten_width, args.size):
        x = torch.randn(batch, c_in, side, side).bfloat16().contiguous(memory_format=torch.channels_last)
        w = torch.randn(c_out, c_in, 3, 3).bfloat16().contiguous(memory_format=torch.channels_last)
        g = torch.nn.functional.conv2d(x, w, padding=1)
        g = torch.randn_like(g).contiguous(memory_format=torch.channels_last)
        flops = 2 * batch * c_in * c_out * 9 * side * side

        def backward(mask: tuple[bool, bool, bool]) -> object:
            return torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

        passes = [median_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1), args.repeats),
                  median_seconds(lambda: backward((True, False, False)), args.repeats),
                  median_seconds(lambda: backward((False, True, False)), args.repeats)]
        totals = [t + s for t, s in zip(totals, passes)]
        cells = " | ".join(f"{s * 1e3:.1f} ({flops / s / 1e9:.0f})" for s in passes)
        print(f"| {name} | {c_in} -> {c_out} at {side}x{side} | {cells} |")
    print(f"| all | | {totals[0] * 1e3:.1f} | {totals[1] * 1e3:.1f} | {totals[2] * 1e3:.1f} |")


if __name__ == "__main__":
    main()
