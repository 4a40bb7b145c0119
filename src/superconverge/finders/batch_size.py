"""The largest batch whose training step fits in memory, and what each batch size costs in time.

Smith (2018): use the largest batch that fits, then tune the rest around it. Batch sizes are
tried by doubling, then by bisection; each trial is a real training step (forward, backward,
optimizer step, from a fresh model and optimizer) whose peak memory is measured:

- on a GPU, ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; the budget
  defaults to the card's total memory;
- on the CPU, the process's peak resident set size (``VmHWM``), reset before each trial by
  writing ``5`` to ``/proc/self/clear_refs`` (Linux 4.0+). It is what the OS counts against
  you, allocator slack and oneDNN scratch included, not an estimate from tensor sizes. The
  budget is for the whole process and defaults to its cgroup limit or, failing that, the
  memory available now plus what the process holds. Without the reset (not Linux) only
  trials that raise the high-water mark are measured; the others are interpolated.

A batch fits when its peak is at most ``(1 - margin) * budget``. A trial that the trials
before it predict (linearly in the batch) to exceed the whole budget is not run, so the
search cannot push the machine into swapping. Throughput is timed on the steps after the first.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from superconverge.finders.lr_range import LossFn, to_device
from superconverge.finders.memory import budget as _budget
from superconverge.finders.memory import cpu_peak, gib, release_free_memory, reset_cpu_peak
from superconverge.train.checkpoint import rng_state, set_rng_state
from superconverge.train.runtime import Precision, autocast, pick_device, resolve_precision

SATURATION = 0.9  # a batch "pays" until throughput reaches this fraction of the best seen


@dataclass(frozen=True)
class Trial:
    batch_size: int
    peak_bytes: int | None  # None when the step ran out of memory on a GPU
    fits: bool
    images_per_second: float | None
    measured: bool  # False: predicted from other trials (not run, or below a high-water mark)


@dataclass(frozen=True)
class BatchSizeResult:
    """The pick, every trial, and advice on LR and weight decay when the batch changes."""

    batch_size: int
    trials: tuple[Trial, ...]
    budget_bytes: int
    margin: float
    device: str
    method: str  # how memory was measured
    saturates_at: int | None  # the smallest batch reaching 90% of the best throughput
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trials": [asdict(t) for t in sorted(self.trials, key=lambda t: t.batch_size)]}

    def plot(self, path: str | Path) -> Path:
        """Peak memory and throughput against batch size."""
        from superconverge.finders.plots import plot_batch_size

        return plot_batch_size(self, path)


def search_batch_size(fits: Callable[[int], bool], *, start: int = 16, max_batch: int = 4096,
                      multiple_of: int = 8) -> int | None:
    """The largest batch in ``1..max_batch`` with ``fits(batch)``: doubling, then bisection.

    Assumes memory grows with the batch. Bisection stops within ``max(multiple_of, lo / 16)``
    of the limit: the last few percent are not worth more trials. ``None`` if even 1 does not fit.

    >>> search_batch_size(lambda b: b <= 700, start=16, max_batch=4096)
    672
    """
    if start < 1 or max_batch < 1:
        raise ValueError(f"start and max_batch must be >= 1, got {start} and {max_batch}")
    b = min(start, max_batch)
    if fits(b):
        lo, hi = b, None
        while hi is None and lo < max_batch:
            b = min(2 * lo, max_batch)
            lo, hi = (b, None) if fits(b) else (lo, b)
        if hi is None:
            return lo
    else:
        lo, hi = None, b
        while lo is None and hi > 1:
            b = hi // 2
            lo, hi = (b, hi) if fits(b) else (None, b)
        if lo is None:
            return None
    while hi - lo > max(multiple_of, lo // 16):
        mid = (lo + hi) // 2
        mid = mid - mid % multiple_of if mid - mid % multiple_of > lo else mid
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def scale_for_batch(lr: float, weight_decay: float, from_batch: int, to_batch: int, *,
                    rule: Literal["linear", "sqrt"] = "linear",
                    reduction: Literal["mean", "sum"] = "mean") -> tuple[float, float]:
    """(lr, weight_decay) for ``to_batch`` given values tuned at ``from_batch``; ``k = to/from``.

    Loss averaged over the batch (PyTorch's default): linear rule ``(lr k, wd)``: the decay step
    ``lr * wd`` already grows with the LR; sqrt rule ``(lr sqrt(k), wd sqrt(k))`` keeps the decay
    per epoch. Loss summed (Myrtle): the LR per example stays, and the weight decay, applied once
    per step with k times fewer steps, grows by k: ``(lr, wd k)``; sqrt rule ``(lr / sqrt(k), wd k^1.5)``.

    >>> scale_for_batch(0.4, 5e-4, 128, 512)
    (1.6, 0.0005)
    >>> scale_for_batch(0.4, 5e-4, 128, 512, reduction="sum")
    (0.4, 0.002)
    """
    if from_batch < 1 or to_batch < 1:
        raise ValueError(f"batch sizes must be >= 1, got {from_batch} and {to_batch}")
    k = to_batch / from_batch
    if rule not in ("linear", "sqrt") or reduction not in ("mean", "sum"):
        raise ValueError(f"rule must be linear or sqrt and reduction mean or sum, got {rule!r}, {reduction!r}")
    if reduction == "mean":
        return (lr * k, weight_decay) if rule == "linear" else (lr * math.sqrt(k), weight_decay * math.sqrt(k))
    return (lr, weight_decay * k) if rule == "linear" else (lr / math.sqrt(k), weight_decay * k**1.5)


SCALING_ADVICE = (
    "When the batch changes from B0 to B (k = B/B0): with the loss averaged over the batch (PyTorch's "
    "default), scale the LR by k and keep the weight decay (linear rule; SGD's decay step lr*wd grows with "
    "the LR), or scale both by sqrt(k) (square-root rule, often better for Adam). With the loss summed over "
    "the batch, the LR per example stays fixed but the weight decay must grow by k: it is applied once per "
    "step and there are k times fewer steps (Myrtle). These are starting points: re-run the LR range test "
    "at the new batch size."
)


def find_batch_size(
    make_model: Callable[[], nn.Module],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    loss_fn: LossFn,
    sample_batch_fn: Callable[[int], Any],
    *,
    memory_budget_bytes: int | None = None,
    margin: float = 0.1,
    max_batch: int = 4096,
    start: int = 16,
    timed_steps: int = 2,
    device: str = "auto",
    precision: Precision = "auto",
) -> BatchSizeResult:
    """The largest batch (up to ``max_batch``) whose training step fits ``(1 - margin)`` of the budget.

    ``sample_batch_fn(batch_size)`` returns one ``(x, y)`` batch of that size.

    >>> import torch  # doctest: +SKIP
    >>> find_batch_size(lambda: torch.nn.Linear(100, 10),  # doctest: +SKIP
    ...                 lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
    ...                 torch.nn.functional.cross_entropy,
    ...                 lambda b: (torch.randn(b, 100), torch.randint(0, 10, (b,))), max_batch=1024).batch_size
    1024
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin}")
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    budget, method = _budget(dev, memory_budget_bytes)
    limit = (1 - margin) * budget
    trials: dict[int, Trial] = {}

    def fits(b: int) -> bool:
        predicted = _predict(trials, b)
        if predicted is not None and predicted > budget:
            trials[b] = Trial(b, int(predicted), False, None, False)
        else:
            trials[b] = _trial(b, make_model, make_optimizer, loss_fn, sample_batch_fn, dev, prec,
                               timed_steps, limit, trials)
        return trials[b].fits

    rng = rng_state()  # model inits and sample batches draw from the global RNGs; put them back
    try:
        # One throwaway step first: the first step of a process loads kernels and builds caches,
        # which would make the first trial look slow (its memory stays resident, so it still counts).
        _steps(min(start, max_batch), make_model, make_optimizer, loss_fn, sample_batch_fn, dev, prec, 0)
        best = search_batch_size(fits, start=start, max_batch=max_batch)
    finally:
        set_rng_state(rng)
    if best is None:
        raise ValueError(f"even a batch of 1 does not fit in {gib(limit)} ({1 - margin:.0%} of the "
                         f"{gib(budget)} budget); give a larger memory_budget_bytes or a smaller model")
    saturates = _saturation(trials)
    peak = trials[best].peak_bytes or 0
    advice = f"Batch {best}: the largest that fits {1 - margin:.0%} of the {gib(budget)} budget " \
             f"(peak {gib(peak)}{', the max_batch asked for' if best == max_batch else ''})."
    if saturates is not None and saturates < best:
        ips = max(t.images_per_second or 0 for t in trials.values())
        advice += (f" Throughput reaches {SATURATION:.0%} of its best ({ips:.0f} img/s) already at batch "
                   f"{saturates}: larger batches buy little speed and give fewer steps per epoch.")
    return BatchSizeResult(best, tuple(sorted(trials.values(), key=lambda t: t.batch_size)), int(budget), margin,
                           str(dev), method, saturates, advice + " " + SCALING_ADVICE)


# -- one trial ------------------------------------------------------------------------------


def _trial(b: int, make_model: Callable[[], nn.Module], make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
           loss_fn: LossFn, sample_batch_fn: Callable[[int], Any], dev: torch.device, prec: Precision,
           timed_steps: int, limit: float, trials: dict[int, Trial]) -> Trial:
    gc.collect()  # what earlier trials left in reference cycles must not count against this one
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        release_free_memory()
    before = -1 if cuda or reset_cpu_peak() else cpu_peak()
    try:
        seconds = _steps(b, make_model, make_optimizer, loss_fn, sample_batch_fn, dev, prec, timed_steps)
    except torch.cuda.OutOfMemoryError:
        return Trial(b, None, False, None, True)  # the next trial's collection frees what it held
    measured = True
    if cuda:
        peak = int(torch.cuda.max_memory_allocated(dev))
    else:
        peak = cpu_peak()
        if peak <= before:  # no reset here, and an earlier, larger trial set the high-water mark
            estimate = _predict(trials, b)
            peak, measured = (int(estimate) if estimate is not None else peak), False
    ips = b * timed_steps / seconds if timed_steps and seconds > 0 else None
    return Trial(b, peak, peak <= limit, ips, measured)


def _steps(b: int, make_model: Callable[[], nn.Module], make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
           loss_fn: LossFn, sample_batch_fn: Callable[[int], Any], dev: torch.device, prec: Precision,
           timed_steps: int) -> float:
    """Seconds of ``timed_steps`` training steps after a first one (which builds optimizer state)."""
    model = make_model().to(dev)
    optimizer = make_optimizer(model)
    x, y = to_device(sample_batch_fn(b), dev)
    seconds = 0.0
    for i in range(1 + timed_steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(dev, prec):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds += (time.perf_counter() - started) if i else 0.0
    return seconds


def _predict(trials: dict[int, Trial], b: int) -> float | None:
    """Peak memory at ``b`` from the line through the two nearest measured trials (memory ~ a + c b)."""
    known = sorted((t.batch_size, t.peak_bytes) for t in trials.values() if t.measured and t.peak_bytes)
    if len(known) < 2:
        return None
    (b1, m1), (b2, m2) = sorted(known, key=lambda k: abs(k[0] - b))[:2]
    return m1 + (m2 - m1) * (b - b1) / (b2 - b1)


def _saturation(trials: dict[int, Trial]) -> int | None:
    timed = sorted((t.batch_size, t.images_per_second) for t in trials.values() if t.images_per_second and t.fits)
    if not timed:
        return None
    best = max(ips for _, ips in timed)
    return next(b for b, ips in timed if ips >= SATURATION * best)
