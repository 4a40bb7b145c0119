"""Cost of one scheduler step: superconverge's Scheduler vs torch's OneCycleLR, side by side.

Also: that cost as a share of one ResNet-20 training step at batch 128, and the
import time of ``superconverge.schedules``. Run by hand:

    python bench/scheduler_step.py [--groups 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from superconverge.optim import Scheduler, one_cycle_lr
from superconverge.schedules import one_cycle
from superconverge.train.runtime import autocast, resolve_precision


def make_optimizer(groups: int) -> torch.optim.Optimizer:
    layers = [torch.nn.Linear(4, 4) for _ in range(groups)]
    return torch.optim.SGD([{"params": m.parameters()} for m in layers], lr=0.1, momentum=0.9)


def time_steps(sched, n: int) -> float:
    """Seconds per scheduler step (the optimizer itself is not stepped)."""
    t0 = time.perf_counter()
    for _ in range(n):
        sched.step()
    return (time.perf_counter() - t0) / n


def scheduler_costs(groups: int, rounds: int, n: int) -> tuple[list[float], list[float], list[float]]:
    ours, preset, theirs = [], [], []
    for _ in range(rounds):  # interleave so both see the same machine state
        opt = make_optimizer(groups)
        ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=n + 1)
        opt._opt_called = True  # torch warns when step() precedes optimizer.step(); not timed here
        theirs.append(time_steps(ref, n))
        opt = make_optimizer(groups)
        ours.append(time_steps(Scheduler(opt, one_cycle(n + 1, 0.1)), n))
        opt = make_optimizer(groups)  # the preset builds one policy per group, like OneCycleLR
        preset.append(time_steps(one_cycle_lr(opt, 0.1, total_steps=n + 1), n))
    return ours, preset, theirs


def resnet20_step_seconds(batch: int = 128, steps: int = 6) -> tuple[float, str]:
    from superconverge.train.models import build_model

    model = build_model("resnet20").to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    times = []
    precision = resolve_precision("auto", torch.device("cpu"))  # fp32 where bf16 is emulated
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), precision


def import_seconds() -> float:
    code = "import time; t=time.perf_counter(); import superconverge.schedules; print(time.perf_counter()-t)"
    runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    ours, preset, theirs = scheduler_costs(args.groups, args.rounds, args.steps)
    o, p, t = statistics.median(ours), statistics.median(preset), statistics.median(theirs)
    print(f"param groups: {args.groups}, steps per round: {args.steps}, rounds: {args.rounds}")
    print(f"superconverge Scheduler.step (lr + momentum): {o * 1e6:7.2f} us (median)")
    print(f"torch OneCycleLR.step (lr + momentum):        {t * 1e6:7.2f} us (median)")
    print(f"superconverge one_cycle_lr preset .step:      {p * 1e6:7.2f} us (median)")
    print(f"ratio Scheduler / torch:                      {o / t:7.3f}")
    print(f"ratio one_cycle_lr preset / torch:            {p / t:7.3f}")
    train, precision = resnet20_step_seconds()
    print(f"ResNet-20 train step, batch 128, {precision}:        {train * 1e3:7.1f} ms (median)")
    print(f"scheduler step as share of a train step:      {100 * o / train:7.4f} %")
    print(f"import superconverge.schedules:               {import_seconds() * 1e3:7.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
