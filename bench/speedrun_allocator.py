"""Speedrun training steps with glibc's default malloc against ``keep_freed_memory``, side by side.

The setting is process-wide and cannot be undone, so each measurement is a fresh process;
the two modes alternate for ``--rounds`` rounds. Each process builds the recipe's network,
takes ``--warm`` full training steps (forward, backward, optimizer step) on random 32 px
batches and times ``--steps`` more; it prints the median ms per step and the peak resident
memory. Run alone on the machine:

    python bench/speedrun_allocator.py
    python bench/speedrun_allocator.py --set low_res_epochs=0 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def child(mode: str, recipe_name: str, sets: list[str], warm: int, steps: int) -> None:
    import resource
    import time
    import tomllib

    if mode == "keep":
        from superconverge.train.allocator import keep_freed_memory

        assert keep_freed_memory(), "mallopt failed: not glibc?"
    import torch
    from torch.nn import functional as F

    from superconverge.speedrun.recipe import load_recipe
    from superconverge.speedrun.run import build
    from superconverge.train.runtime import autocast, resolve_precision

    recipe = load_recipe(recipe_name)
    recipe = recipe.replace(**{k: v for item in sets for k, v in tomllib.loads(item).items()})
    dev = torch.device("cpu")
    precision = resolve_precision(recipe.precision, dev)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5000, 32, 32, 3), dtype=torch.uint8)
    net, optimizer, _ = build(recipe, images, 1000, seed=0, device=dev)
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(recipe.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (recipe.batch_size,))
    times = []
    for i in range(warm + steps):
        tick = time.perf_counter()
        with autocast(dev, precision):
            loss = F.cross_entropy(net(x).float(), y, label_smoothing=recipe.label_smoothing)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warm:
            times.append(time.perf_counter() - tick)
    print(json.dumps({"ms": 1000 * statistics.median(times),
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cpu94")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.recipe, args.set, args.warm, args.steps)
        return
    results: dict[str, list[dict[str, float]]] = {"default": [], "keep": []}
    for r in range(args.rounds):
        for mode in results:
            cmd = [sys.executable, __file__, "--child", mode, "--recipe", args.recipe, "--warm", str(args.warm),
                   "--steps", str(args.steps)] + [a for item in args.set for a in ("--set", item)]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            results[mode].append(out)
            print(f"round {r + 1}: {mode:8s} {out['ms']:7.1f} ms/step, peak {out['peak_mib']:7.0f} MiB", flush=True)
    med = {mode: statistics.median(o["ms"] for o in rows) for mode, rows in results.items()}
    print(f"\nrecipe {args.recipe} {' '.join(args.set)}: glibc default {med['default']:.1f} ms/step, "
          f"keep_freed_memory {med['keep']:.1f} ms/step: {med['default'] / med['keep']:.2f}x the speed")


if __name__ == "__main__":
    main()
