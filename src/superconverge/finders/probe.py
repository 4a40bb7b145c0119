"""A second stage after the LR range test: short 1cycle probes at a few peak LRs, picked by held-out loss.

The range test reads a peak LR off one noisy curve. Where the training run's accuracy has a
cliff a few times above its best LR (networks without batch norm, short runs), a reading
2-3x too high costs everything and one 3x too low costs little. Probing turns that reading
into a choice among measured outcomes: each candidate trains a short 1cycle from the same
weights on the same batches, and the lowest loss on batches none of them trained on wins.
The model, optimizer and every RNG are restored after each probe (:mod:`.snapshot`).

Cost: ``len(candidates) * steps`` optimizer steps and ``held_out`` forward passes each.

>>> import torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x = torch.randn(2048, 8); y = (x[:, 0] + x[:, 1] > 0).long()
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.85)
>>> batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 2048, 32)]
>>> found = probe(model, opt, torch.nn.functional.cross_entropy, batches, [30.0, 1.0, 0.03], steps=50)
>>> found.pick, found.losses[0] > found.losses[1]
(1.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn

from superconverge.finders.snapshot import restore, snapshot
from superconverge.optim import Scheduler
from superconverge.schedules import one_cycle

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ProbeResult:
    """Each candidate peak LR with its held-out loss after a short 1cycle (inf: diverged), and the pick."""

    candidates: tuple[float, ...]
    losses: tuple[float, ...]
    pick: float
    steps: int  # optimizer steps per probe

    def to_dict(self) -> dict[str, object]:
        return {"candidates": list(self.candidates), "losses": [v if math.isfinite(v) else None for v in self.losses],
                "pick": self.pick, "steps": self.steps}


def candidates(suggestion: float, n: int = 3, spread: float = 3.0) -> tuple[float, ...]:
    """``suggestion``, then each ``spread`` times lower: the range test errs high far more than low.

    >>> [round(c, 9) for c in candidates(0.9)]
    [0.9, 0.3, 0.1]
    """
    if not (suggestion > 0 and math.isfinite(suggestion)) or n < 1 or spread <= 1:
        raise ValueError(f"need a positive suggestion, n >= 1 and spread > 1; got {suggestion}, {n}, {spread}")
    return tuple(suggestion / spread**k for k in range(n))


def probe(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable[[torch.Tensor, torch.Tensor],
          torch.Tensor], data: Iterable[Batch], peaks: Sequence[float], *, steps: int = 50,
          held_out: int = 4) -> ProbeResult:
    """Train a ``steps``-step 1cycle (LR only) at each peak in ``peaks`` from the current weights; pick the
    one with the lowest mean loss on the ``held_out`` batches that follow the training batches in ``data``.

    Every probe sees the same batches; ties go to the earlier (larger) peak.
    """
    if steps < 2 or held_out < 1 or not peaks:
        raise ValueError(f"need steps >= 2, held_out >= 1 and at least one peak; got {steps}, {held_out}, {peaks}")
    batches = list(islice(iter(data), steps + held_out))
    if len(batches) < steps + held_out:
        raise ValueError(f"probing needs {steps + held_out} batches ({steps} to train, {held_out} held out); "
                         f"the data gave {len(batches)}")
    device = next(model.parameters()).device
    train, held = batches[:steps], batches[steps:]
    saved = snapshot(model, optimizer)
    losses = []
    try:
        for peak in peaks:
            losses.append(_one(model, optimizer, loss_fn, train, held, float(peak), device))
            restore(model, optimizer, saved)
    finally:
        restore(model, optimizer, saved)
    best = min(range(len(peaks)), key=lambda i: (losses[i], i))
    return ProbeResult(tuple(map(float, peaks)), tuple(losses), float(peaks[best]), steps)


def _one(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, train: list[Batch],
         held: list[Batch], peak: float, device: torch.device) -> float:
    sched = Scheduler(optimizer, {"lr": one_cycle(len(train), peak)["lr"]})
    model.train()
    for x, y in train:
        loss = loss_fn(model(x.to(device)), y.to(device))
        if not torch.isfinite(loss):
            return math.inf
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        total = sum(loss_fn(model(x.to(device)), y.to(device)).item() for x, y in held) / len(held)
    return total if math.isfinite(total) else math.inf
