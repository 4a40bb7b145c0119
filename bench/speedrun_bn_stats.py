"""Do saved speedrun models gain from BatchNorm statistics re-estimated after training?

A speedrun's BatchNorm layers keep running statistics with momentum 0.4 (mostly the last
few batches), averaged by Lookahead with the weights. "Precise BN" recomputes them with
the final weights as plain averages over ``K`` training batches (augmented as in training,
at full resolution), costing ``K`` forward passes:

    mean = 1/K sum_k mean_k ;  var = 1/K sum_k var_k

Each model, with the test-time augmentation of ``--tta`` (today's cpu94), is evaluated with its
statistics as saved and after re-estimating them from each ``K``; the differences are paired
(same model, same images). Choose on the held-out split (``--holdout 5000``, the split the
recipes were tuned on). Run alone on the machine:

    superconverge speedrun --holdout 5000 --save-model runs/tta/s0.pt ...
    python bench/speedrun_bn_stats.py --data ../shared/datasets/cifar10-jpeg.tar.gz --holdout 5000 runs/tta/s0.pt
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from superconverge.speedrun import holdout_split
from superconverge.speedrun.recipe import load_recipe
from superconverge.speedrun.run import evaluate_tta, load_model, train_feed
from superconverge.train.allocator import keep_freed_memory
from superconverge.train.run import load_data
from superconverge.train.runtime import autocast, pick_device, resolve_precision


@torch.no_grad()
def reestimate_bn(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                  precision: str) -> None:
    """Replace every BatchNorm's running statistics by their plain average over ``batches``."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for x, _ in batches:
        with autocast(device, precision):  # type: ignore[arg-type]
            net(x.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="files written by speedrun --save-model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--holdout", type=int, default=0, help="evaluate on this held-out split (seed 0)")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16, 64],
                        help="numbers K of training batches to re-estimate from")
    parser.add_argument("--tta", default="cpu94", help="the recipe whose test-time augmentation every model gets")
    args = parser.parse_args()
    keep_freed_memory()
    tta = load_recipe(args.tta)
    device = pick_device("auto")
    data = load_data(args.data)
    if args.holdout:
        data = holdout_split(data, args.holdout)
    train_x, train_y = torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels)
    images, labels = torch.from_numpy(data.test_images), torch.from_numpy(data.test_labels)
    where = f"{len(labels)} {'held-out' if args.holdout else 'test'} images"
    rows: dict[str, list[tuple[float, float, float]]] = {"as saved": []}
    seconds: dict[int, list[float]] = {k: [] for k in args.batches}
    for path in args.models:
        net, recipe = load_model(path, device)
        precision = resolve_precision(recipe.precision, device)
        options = dict(device=device, precision=precision, channels_last=recipe.channels_last, tta=True,
                       translate=tta.tta_translate, translate_below=tta.tta_translate_below,
                       translate_weight=tta.tta_translate_weight)

        def accuracies(model: nn.Module) -> tuple[float, float, float]:
            r = evaluate_tta(model, images, labels, **options)  # type: ignore[arg-type]
            return r["accuracy"], r["accuracy_tta"], r.get("accuracy_tta_translate", r["accuracy_tta"])

        rows["as saved"].append(accuracies(net))
        feed = train_feed(recipe, train_x, train_y, seed=1)
        for k in args.batches:
            batch_iter = feed(0)
            batches = [next(batch_iter) for _ in range(min(k, len(feed)))]
            model = copy.deepcopy(net)
            start = time.perf_counter()
            reestimate_bn(model, batches, device, precision)
            seconds[k].append(time.perf_counter() - start)
            rows.setdefault(f"re-estimated from {k} batches", []).append(accuracies(model))
        done = ", ".join(f"{name}: {100 * r[-1][2]:.2f} %" for name, r in rows.items())
        print(f"{path}: {where}, {done}", flush=True)

    base = [r[2] for r in rows["as saved"]]
    print("\n| BatchNorm statistics | cost | plain | flip TTA | full TTA | vs as saved (full TTA) | models up / down |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, accs in rows.items():
        k = int(name.split()[2]) if name != "as saved" else 0
        cost = f"{sum(seconds[k]) / len(seconds[k]):.1f} s" if k else ""
        mean = [sum(a[i] for a in accs) / len(accs) for i in range(3)]
        full = [a[2] for a in accs]
        diff = (sum(full) - sum(base)) / len(base)
        up, down = sum(a > b for a, b in zip(full, base)), sum(a < b for a, b in zip(full, base))
        print(f"| {name} | {cost} | {100 * mean[0]:.2f} % | {100 * mean[1]:.2f} % | {100 * mean[2]:.2f} % | "
              f"{100 * diff:+.2f} | {up} / {down} |")


if __name__ == "__main__":
    main()
