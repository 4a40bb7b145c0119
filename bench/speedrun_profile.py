"""Where a speedrun training step spends its time, on real batches, against random ones.

Runs the recipe's network on real CIFAR-10 batches (augmented as in the recipe) and on
random batches of the same shape, alternating, and prints ms per step of each part: the
feed (gather, augment, normalise), forward + backward, the optimizer step (with the
schedule and Lookahead), then a torch.profiler table of the slowest ops on real data.
Run alone on the machine:

    python bench/speedrun_profile.py --data ../shared/datasets/cifar10-jpeg.tar.gz
    python bench/speedrun_profile.py --data PATH --recipe cpu94 --set batch_size=256 --warm 20

Like the command line, it first tells glibc to keep freed memory (``--default-malloc``: not).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib

import torch
from torch.nn import functional as F

from superconverge.optim.lookahead import Lookahead
from superconverge.speedrun.recipe import load_recipe
from superconverge.speedrun.run import build, epoch_batches, train_feed
from superconverge.train.allocator import keep_freed_memory
from superconverge.train.cifar import load_cifar10
from superconverge.train.runtime import autocast, resolve_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", default="cpu94")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--warm", type=int, default=20, help="real training steps before timing")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each kind")
    parser.add_argument("--profile", action="store_true", help="also print a torch.profiler table")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (by default this keeps freed memory, "
                             "as the command line does)")
    args = parser.parse_args()
    kept = not args.default_malloc and keep_freed_memory()
    recipe = load_recipe(args.recipe)
    recipe = recipe.replace(**{k: v for item in args.set for k, v in tomllib.loads(item).items()})
    dev = torch.device("cpu")
    precision = resolve_precision(recipe.precision, dev)
    data = load_cifar10(args.data)
    images, labels = torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels)
    feed = train_feed(recipe, images, labels)
    steps = sum(epoch_batches(recipe, len(images)))
    net, optimizer, sched = build(recipe, images, steps, seed=0, device=dev)
    net = net.to(memory_format=torch.channels_last if recipe.channels_last else torch.contiguous_format)
    if recipe.lookahead_every:
        Lookahead(net, optimizer, lambda t: recipe.lookahead_decay * (t / steps) ** 3, every=recipe.lookahead_every)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision}, recipe {recipe.name} "
          f"widths {list(recipe.widths)} batch {recipe.batch_size}; {args.warm} warm-up steps; "
          f"{'freed memory kept' if kept else 'default malloc'}")

    batches = feed(0)
    times: dict[str, list[float]] = {"feed": [], "real fwd+bwd": [], "random fwd+bwd": [], "step+sched": []}
    rand_x = torch.randn(recipe.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    rand_y = torch.randint(0, 10, (recipe.batch_size,))

    def fwd_bwd(x: torch.Tensor, y: torch.Tensor) -> float:
        tick = time.perf_counter()
        with autocast(dev, precision):
            loss = F.cross_entropy(net(x), y, label_smoothing=recipe.label_smoothing)
        loss.backward()
        loss.item()
        return time.perf_counter() - tick

    def real_step(timed: bool) -> None:
        tick = time.perf_counter()
        x, y = next(batches)
        feed_s = time.perf_counter() - tick
        fb = fwd_bwd(x, y)
        tick = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sched.step()
        opt_s = time.perf_counter() - tick
        if timed:
            times["feed"].append(feed_s)
            times["real fwd+bwd"].append(fb)
            times["step+sched"].append(opt_s)

    for _ in range(args.warm):
        real_step(False)
    for _ in range(args.steps):
        real_step(True)
        # the same weights on a random batch; gradients discarded
        times["random fwd+bwd"].append(fwd_bwd(rand_x, rand_y))
        optimizer.zero_grad(set_to_none=True)
    for name, values in times.items():
        print(f"  {name:<16} {1000 * statistics.median(values):8.1f} ms/step (median of {len(values)})")
    real = sum(statistics.median(times[k]) for k in ("feed", "real fwd+bwd", "step+sched"))
    print(f"  real step total  {1000 * real:8.1f} ms  = {recipe.batch_size / real:.0f} img/s")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                real_step(False)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
