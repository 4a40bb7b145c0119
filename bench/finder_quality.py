"""Finder quality: does a short 1cycle at the suggested max_lr do as well as the best of a 2x grid?

Run by hand, alone on the machine (the seconds are wall-clock):

    python bench/finder_quality.py            # three tasks, ~10-15 min on 2 cores
    python bench/finder_quality.py --quick    # tiny sizes, < 1 min: checks that it runs, not quality
    python bench/finder_quality.py --data PATH --grid=-3..5 --seeds 2 --save runs/fq.json
    python bench/finder_quality.py --analyze runs/fq.json   # every suggester against the saved grid

For each task the LR range test runs once (the same model init, optimizer, batch size and data
as training) and suggests s. Then a short 1cycle trains from the same initial weights, batches
and seed at each of 7 peak LRs s * 2**k, k = -3..3; k = 0 is the suggested LR itself. The goal:
its final test accuracy within 1 point of the grid's best. If the best sits at the grid's edge,
the true optimum may lie further out and the table says so. The finder's cost (steps, seconds)
is printed next to one training epoch. ``--seeds N`` trains each grid point from N seeds (init and
data order) and compares means; ``--data`` evaluates the CIFAR task on the full 10,000-image test
set of a local CIFAR-10 copy (training stays a 5,000-image subset), cutting the test noise 3x.
``--save`` keeps the curves and the grid, and ``--analyze`` scores every suggester on them
(accuracy between grid points interpolated in log LR), without training again.

Tasks: ResNet-20 on the shipped CIFAR-10 sample (augmented); an MLP on a synthetic tabular
task (labels from a random teacher net plus noise); a 1-D conv net with AdamW on synthetic
sequences (which of four motifs is hidden in noise). One seed, and 1000 (CIFAR) or 2000 test
examples: one accuracy has a binomial standard error of 1 to 1.6 points, as large as the goal.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from superconverge.finders import DataCycledWarning, lr_find, suggest
from superconverge.schedules import one_cycle
from superconverge.train import DivergedError, FitOptions, LoaderFeed, evaluate, fit
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig
from superconverge.train.run import feeds, load_data
from superconverge.train.runtime import build_optimizer

SETTINGS = dict(
    threads=2,  # the dev box has 2 cores
    finder_steps=100,  # optimizer steps of the LR range test (fastai's and our default)
    goal_points=1.0,  # accuracy points the suggested LR may lose to the grid's best
)
# Per task: examples, epochs, batch size; --quick shrinks them to check the script only.
FULL = {"cifar": dict(n=5000, epochs=5, batch=128), "tabular": dict(n=20000, epochs=8, batch=128),
        "sequence": dict(n=8000, epochs=6, batch=64)}
QUICK = {"cifar": dict(n=256, epochs=1, batch=32), "tabular": dict(n=2048, epochs=2, batch=64),
         "sequence": dict(n=768, epochs=2, batch=64)}


@dataclass
class Task:
    name: str
    make_model: Callable[[], nn.Module]
    optimizer: str  # sgd or adamw: 1cycle cycles momentum (or beta1) between 0.85 and 0.95
    weight_decay: float
    train_for: Callable[[int], object]  # seed -> a Feed whose order (and augmentation) the seed sets
    test: object
    epochs: int
    channels_last: bool


def tensor_feed(x: torch.Tensor, y: torch.Tensor, batch: int, shuffle: bool, seed: int = 0) -> LoaderFeed:
    """A Feed over tensors in memory: the order is a function of (seed, epoch) only."""

    def epoch_batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 1000 + epoch)) \
            if shuffle else torch.arange(len(x))
        return [(x[order[i:i + batch]], y[order[i:i + batch]]) for i in range(0, len(x), batch)]

    return LoaderFeed(epoch_batches, batch_size=batch, batches_per_epoch=math.ceil(len(x) / batch))


def cifar_task(n: int, epochs: int, batch: int, data: str = "sample") -> Task:
    loaded = load_data(data)

    def train_for(seed: int) -> object:
        return feeds(TrainConfig(model="resnet20", train_subset=n, batch_size=batch, seed=seed), loaded)[0]

    test = feeds(TrainConfig(model="resnet20", batch_size=batch), loaded)[1]
    name = "resnet20 / CIFAR-10 " + ("sample" if data == "sample" else f"{n} train, {len(loaded.test_labels)} test")
    return Task(name, lambda: build_model("resnet20"), "sgd", 5e-4, train_for, test, epochs, True)


def tabular_task(n: int, epochs: int, batch: int) -> Task:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n + 4000, 20, generator=g)
    teacher = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 1.5)
        y = (teacher(x) + 0.5 * torch.randn(len(x), 5, generator=g)).argmax(1)

    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 5))

    return Task("MLP / synthetic tabular", mlp, "sgd", 1e-4, lambda seed: tensor_feed(x[:n], y[:n], batch, True, seed),
                tensor_feed(x[n:], y[n:], 1000, False), epochs, False)


def sequence_task(n: int, epochs: int, batch: int) -> Task:
    g = torch.Generator().manual_seed(2)
    length, motif = 128, 12
    motifs = torch.randn(4, motif, generator=g)
    total = n + 2000
    y = torch.randint(0, 4, (total,), generator=g)
    x = torch.randn(total, 1, length, generator=g)
    where = torch.randint(0, length - motif, (total,), generator=g)
    for i in range(total):  # one motif per sequence, at a random place, as loud as the noise
        x[i, 0, where[i]:where[i] + motif] += motifs[y[i]]

    def cnn() -> nn.Module:
        return nn.Sequential(nn.Conv1d(1, 32, 9, padding=4), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(32, 64, 9, padding=4), nn.BatchNorm1d(64), nn.ReLU(),
                             nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(64, 4))

    return Task("1-D CNN + AdamW / synthetic sequences", cnn, "adamw", 1e-2,
                lambda seed: tensor_feed(x[:n], y[:n], batch, True, seed),
                tensor_feed(x[n:], y[n:], 1000, False), epochs, False)


def model_for(task: Task, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # the finder and every run of a seed start from the same weights
    return task.make_model()


def find(task: Task, steps: int) -> tuple[float, object]:
    model = model_for(task)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-3, momentum=0.85, weight_decay=task.weight_decay)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataCycledWarning)  # short epochs: the sweep reads a few of them
        result = lr_find(model, opt, nn.functional.cross_entropy, task.train_for(0), steps=steps)
    return result.suggestion, result


def train(task: Task, max_lr: float, seed: int = 0) -> tuple[float, float]:
    """(test accuracy, seconds) of a 1cycle run peaking at ``max_lr``; accuracy nan if it diverged."""
    model = model_for(task, seed)
    data = task.train_for(seed)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=max_lr, momentum=0.9, weight_decay=task.weight_decay)
    policy = one_cycle(task.epochs * len(data), max_lr)
    started = time.perf_counter()
    try:
        fit(model, opt, policy, data, epochs=task.epochs,
            options=FitOptions(progress=False, channels_last=task.channels_last))
    except DivergedError:
        return math.nan, time.perf_counter() - started
    seconds = time.perf_counter() - started
    return evaluate(model, task.test, channels_last=task.channels_last)[1], seconds


def run(task: Task, steps: int, grid: list[int], seeds: int) -> dict:
    steps_per_epoch = len(task.train_for(0))
    print(f"\n== {task.name}: {task.epochs} epochs of {steps_per_epoch} steps, {task.optimizer}, "
          f"weight decay {task.weight_decay:g}, {seeds} seed(s) per LR", flush=True)
    suggestion, result = find(task, steps)
    print(f"finder: {result.steps} steps in {result.seconds:.1f} s; suggestion {suggestion:.4g} "
          f"(band {result.band[0]:.3g} to {result.band[1]:.3g}, {'reliable' if result.reliable else 'NOT reliable'}); "
          + ", ".join(f"{k} {v:.3g}" for k, v in result.suggestions.items()), flush=True)
    rows = []
    for k in grid:
        lr = suggestion * 2.0**k
        runs = [train(task, lr, seed) for seed in range(seeds)]
        accs = [a for a, _ in runs]
        acc = math.nan if any(math.isnan(a) for a in accs) else sum(accs) / len(accs)  # a diverged seed sinks the LR
        seconds = sum(t for _, t in runs) / len(runs)
        rows.append({"k": k, "lr": lr, "accuracy": acc, "seeds": accs, "seconds": seconds})
        mark = "  <- suggested" if k == 0 else ""
        each = " (" + ", ".join(f"{a:.4f}" for a in accs) + ")" if seeds > 1 else ""
        print(f"  lr {lr:<10.4g} (x{2.0 ** k:<5g}) test accuracy {acc:.4f}{each}  {seconds:5.1f} s{mark}", flush=True)
    finite = [r for r in rows if not math.isnan(r["accuracy"])]
    best = max(finite, key=lambda r: r["accuracy"]) if finite else rows[0]
    ours = next((r for r in rows if r["k"] == 0), None)
    gap = 100 * (best["accuracy"] - ours["accuracy"]) if ours and not math.isnan(ours["accuracy"]) else math.inf
    epoch_s = (ours or rows[0])["seconds"] / task.epochs
    edge = " (best at the grid's edge: the optimum may lie further out)" if best["k"] in (min(grid), max(grid)) else ""
    print(f"best lr {best['lr']:.4g} (x{2.0 ** best['k']:g}): {best['accuracy']:.4f}; suggested "
          f"{ours['accuracy'] if ours else math.nan:.4f}; gap {gap:.2f} points "
          f"({'meets' if gap <= SETTINGS['goal_points'] else 'misses'} "
          f"the {SETTINGS['goal_points']:g}-point goal){edge}")
    print(f"cost: finder {result.steps} steps {result.seconds:.1f} s vs one epoch {steps_per_epoch} steps "
          f"{epoch_s:.1f} s ({result.seconds / epoch_s:.1f} epochs)")
    return {"task": task.name, "suggestion": suggestion, "gap_points": gap, "best_factor": 2.0 ** best["k"],
            "finder_s": result.seconds, "epoch_s": epoch_s, "seeds": seeds, "grid": rows,
            "curve": {"lrs": list(result.lrs), "losses": [v if math.isfinite(v) else None for v in result.losses]}}


def accuracy_at(rows: list[dict], lr: float) -> float:
    """Grid accuracy at ``lr``, linear in log LR between grid points; nan outside the grid."""
    pts = sorted((math.log(r["lr"]), r["accuracy"]) for r in rows)
    x = math.log(lr)
    if not pts[0][0] - 1e-9 <= x <= pts[-1][0] + 1e-9:
        return math.nan
    for (x0, a0), (x1, a1) in zip(pts, pts[1:]):
        if x0 - 1e-9 <= x <= x1 + 1e-9:
            if math.isnan(a0) or math.isnan(a1):
                return math.nan
            return a0 + (a1 - a0) * (x - x0) / (x1 - x0) if x1 > x0 else a0
    return pts[0][1]


def rise_rule(fraction: float, back: float) -> Callable:
    """Candidate 1cycle peak: ``max(min * 10^-w, rise * 10^-(back w))``.

    ``rise`` is the first LR past the smoothed minimum where the loss has climbed back
    ``fraction`` of its descent: the right edge of the curve's flat bottom. A sharp wall puts
    it next to the minimum (the rule gives the minimum pulled back one width); a
    wide flat bottom, as BN nets under SGD show, moves it right.
    """
    def rule(lrs, losses) -> float:
        x, y = suggest._prepared(lrs, losses)
        w = suggest._width(x, None)
        level = suggest._local_fit(x, y, w)[0]
        bottom = int(np.argmin(level))
        depth = level[: bottom + 1].max() - level[bottom]
        above = np.flatnonzero(level[bottom:] >= level[bottom] + fraction * depth)
        x_rise = x[bottom + above[0]] if len(above) else x[-1]
        return float(10 ** max(x[bottom] - w, x_rise - back * w))
    return rule


def analyze(path: str) -> None:
    """Score every suggester (and candidate rules for the 1cycle peak) on saved curves and grids."""
    saved = json.loads(open(path).read())
    rules = {name: f for name, f in suggest.SUGGESTERS.items()}
    rules["minimum-1w"] = lambda lrs, losses: suggest.minimum(lrs, losses) * 10 ** -suggest._width(
        suggest._prepared(lrs, losses)[0], None)  # the consensus before the turn rule
    rules["consensus"] = lambda lrs, losses: suggest.consensus(lrs, losses).value
    for fraction in (0.1, 0.25, 0.5):
        for back in (1, 2, 3):
            rules[f"rise{fraction:g}-{back}w"] = rise_rule(fraction, back)
    print(f"gap to the grid's best, accuracy points (interpolated between grid points in log LR; '-' = off the grid)")
    print(f"{'rule':<16}" + "".join(f"{t['task'][:28]:>30}" for t in saved["tasks"]) + f"{'worst':>8}")
    for name, rule in rules.items():
        gaps = []
        for t in saved["tasks"]:
            lrs = t["curve"]["lrs"]
            losses = [math.nan if v is None else v for v in t["curve"]["losses"]]
            lr = rule(lrs, losses)
            best = max(r["accuracy"] for r in t["grid"] if not math.isnan(r["accuracy"]))
            gaps.append((lr, 100 * (best - accuracy_at(t["grid"], lr))))
        worst = max(g for _, g in gaps)
        print(f"{name:<16}" + "".join(f"{lr:>18.3g} {'-' if math.isnan(g) else f'{g:.2f}':>11}" for lr, g in gaps)
              + f"{'-' if math.isnan(worst) else f'{worst:.2f}':>8}")


def parse_grid(text: str) -> list[int]:
    lo, _, hi = text.partition("..")
    if not hi:
        raise SystemExit(f"--grid must look like LO..HI (e.g. -3..3), got {text!r}")
    return list(range(int(lo), int(hi) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (< 1 min): checks the script runs")
    parser.add_argument("--tasks", default="cifar,tabular,sequence", help="comma list of tasks to run")
    parser.add_argument("--grid", default="-3..3",
                        help="exponents k of the grid suggestion x 2^k, written --grid=LO..HI (default -3..3)")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per grid point (default 1)")
    parser.add_argument("--data", default="sample",
                        help="CIFAR-10 copy for the cifar task (default: the shipped sample)")
    parser.add_argument("--save", help="write curves, grids and gaps to this JSON file")
    parser.add_argument("--analyze", metavar="JSON", help="score every suggester on a saved file; no training")
    args = parser.parse_args()
    if args.analyze:
        analyze(args.analyze)
        return
    torch.set_num_threads(SETTINGS["threads"])
    sizes = QUICK if args.quick else FULL
    steps = 30 if args.quick else SETTINGS["finder_steps"]
    grid = parse_grid(args.grid)
    makers = {"cifar": lambda **kw: cifar_task(**kw, data=args.data), "tabular": tabular_task,
              "sequence": sequence_task}
    started = time.perf_counter()
    print(f"finder quality ({'quick' if args.quick else 'full'}): torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; grid = suggestion x 2^k, k in {grid}; {args.seeds} seed(s)")
    summary = []
    for name in args.tasks.split(","):
        summary.append(run(makers[name](**sizes[name]), steps, grid, args.seeds))
        if args.save:  # after every task: a long run that stops keeps what it measured
            with open(args.save, "w") as f:
                json.dump({"settings": {**SETTINGS, "grid": grid, "seeds": args.seeds, "data": args.data},
                           "tasks": summary}, f, indent=1)
    print("\n== summary")
    for s in summary:
        print(f"  {s['task']:<40} suggestion {s['suggestion']:<9.3g} best x{s['best_factor']:<6g} "
              f"gap {s['gap_points']:5.2f} points   finder {s['finder_s']:.1f} s = "
              f"{s['finder_s'] / s['epoch_s']:.1f} epochs")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
