"""Finder quality: does a short 1cycle at the suggested max_lr do as well as the best of a 2x grid?

Run by hand, alone on the machine (the seconds are wall-clock):

    python bench/finder_quality.py            # three tasks, ~10-15 min on 2 cores
    python bench/finder_quality.py --quick    # tiny sizes, < 1 min: checks that it runs, not quality

For each task the LR range test runs once (the same model init, optimizer, batch size and data
as training) and suggests s. Then a short 1cycle trains from the same initial weights, batches
and seed at each of 7 peak LRs s * 2**k, k = -3..3; k = 0 is the suggested LR itself. The goal:
its final test accuracy within 1 point of the grid's best. If the best sits at the grid's edge,
the true optimum may lie further out and the table says so. The finder's cost (steps, seconds)
is printed next to one training epoch.

Tasks: ResNet-20 on the shipped CIFAR-10 sample (augmented); an MLP on a synthetic tabular
task (labels from a random teacher net plus noise); a 1-D conv net with AdamW on synthetic
sequences (which of four motifs is hidden in noise). One seed, and 1000 (CIFAR) or 2000 test
examples: one accuracy has a binomial standard error of 1 to 1.6 points, as large as the goal.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from superconverge.finders import DataCycledWarning, lr_find
from superconverge.schedules import one_cycle
from superconverge.train import DivergedError, FitOptions, LoaderFeed, evaluate, fit
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig
from superconverge.train.run import feeds, load_data
from superconverge.train.runtime import build_optimizer

SETTINGS = dict(
    threads=2,  # the dev box has 2 cores
    grid=(-3, -2, -1, 0, 1, 2, 3),  # peak LR = suggestion * 2**k
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
    train: object  # a Feed
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


def cifar_task(n: int, epochs: int, batch: int) -> Task:
    config = TrainConfig(model="resnet20", train_subset=n, batch_size=batch, seed=0)
    train, test = feeds(config, load_data("sample"))
    return Task("resnet20 / CIFAR-10 sample", lambda: build_model("resnet20"), "sgd", 5e-4, train, test, epochs, True)


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

    return Task("MLP / synthetic tabular", mlp, "sgd", 1e-4, tensor_feed(x[:n], y[:n], batch, True),
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

    return Task("1-D CNN + AdamW / synthetic sequences", cnn, "adamw", 1e-2, tensor_feed(x[:n], y[:n], batch, True),
                tensor_feed(x[n:], y[n:], 1000, False), epochs, False)


def model_for(task: Task) -> nn.Module:
    torch.manual_seed(0)  # every run and the finder start from the same weights
    return task.make_model()


def find(task: Task, steps: int) -> tuple[float, object]:
    model = model_for(task)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=1e-3, momentum=0.85, weight_decay=task.weight_decay)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataCycledWarning)  # short epochs: the sweep reads a few of them
        result = lr_find(model, opt, nn.functional.cross_entropy, task.train, steps=steps)
    return result.suggestion, result


def train(task: Task, max_lr: float) -> tuple[float, float]:
    """(test accuracy, seconds) of a 1cycle run peaking at ``max_lr``; accuracy nan if it diverged."""
    model = model_for(task)
    opt = build_optimizer(task.optimizer, model.parameters(), lr=max_lr, momentum=0.9, weight_decay=task.weight_decay)
    policy = one_cycle(task.epochs * len(task.train), max_lr)
    started = time.perf_counter()
    try:
        fit(model, opt, policy, task.train, epochs=task.epochs,
            options=FitOptions(progress=False, channels_last=task.channels_last))
    except DivergedError:
        return math.nan, time.perf_counter() - started
    seconds = time.perf_counter() - started
    return evaluate(model, task.test, channels_last=task.channels_last)[1], seconds


def run(task: Task, steps: int) -> dict:
    print(f"\n== {task.name}: {task.epochs} epochs of {len(task.train)} steps, {task.optimizer}, "
          f"weight decay {task.weight_decay:g}", flush=True)
    suggestion, result = find(task, steps)
    print(f"finder: {result.steps} steps in {result.seconds:.1f} s; suggestion {suggestion:.4g} "
          f"(band {result.band[0]:.3g} to {result.band[1]:.3g}, {'reliable' if result.reliable else 'NOT reliable'}); "
          + ", ".join(f"{k} {v:.3g}" for k, v in result.suggestions.items()), flush=True)
    rows = []
    for k in SETTINGS["grid"]:
        lr = suggestion * 2.0**k
        acc, seconds = train(task, lr)
        rows.append((k, lr, acc, seconds))
        mark = "  <- suggested" if k == 0 else ""
        print(f"  lr {lr:<10.4g} (x{2.0 ** k:<5g}) test accuracy {acc:.4f}  {seconds:5.1f} s{mark}", flush=True)
    finite = [r for r in rows if not math.isnan(r[2])]
    best = max(finite, key=lambda r: r[2]) if finite else rows[0]
    ours = next(r for r in rows if r[0] == 0)
    gap = 100 * (best[2] - ours[2]) if not math.isnan(ours[2]) else math.inf
    epoch_s = ours[3] / task.epochs
    edge = " (best at the grid's edge: the optimum may lie further out)" if best[0] in (min(SETTINGS["grid"]),
                                                                                      max(SETTINGS["grid"])) else ""
    print(f"best lr {best[1]:.4g} (x{2.0 ** best[0]:g}): {best[2]:.4f}; suggested {ours[2]:.4f}; gap {gap:.2f} points "
          f"({'meets' if gap <= SETTINGS['goal_points'] else 'misses'} the {SETTINGS['goal_points']:g}-point goal){edge}")
    print(f"cost: finder {result.steps} steps {result.seconds:.1f} s vs one epoch {len(task.train)} steps "
          f"{epoch_s:.1f} s ({result.seconds / epoch_s:.1f} epochs)")
    return {"task": task.name, "suggestion": suggestion, "gap_points": gap, "best_factor": 2.0 ** best[0],
            "finder_s": result.seconds, "epoch_s": epoch_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (< 1 min): checks the script runs")
    parser.add_argument("--tasks", default="cifar,tabular,sequence", help="comma list of tasks to run")
    args = parser.parse_args()
    torch.set_num_threads(SETTINGS["threads"])
    sizes = QUICK if args.quick else FULL
    steps = 30 if args.quick else SETTINGS["finder_steps"]
    makers = {"cifar": cifar_task, "tabular": tabular_task, "sequence": sequence_task}
    started = time.perf_counter()
    print(f"finder quality ({'quick' if args.quick else 'full'}): torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; grid = suggestion x 2^k, k in {list(SETTINGS['grid'])}")
    summary = [run(makers[name](**sizes[name]), steps) for name in args.tasks.split(",")]
    print("\n== summary")
    for s in summary:
        print(f"  {s['task']:<40} suggestion {s['suggestion']:<9.3g} best x{s['best_factor']:<6g} "
              f"gap {s['gap_points']:5.2f} points   finder {s['finder_s']:.1f} s = {s['finder_s'] / s['epoch_s']:.1f} epochs")
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
