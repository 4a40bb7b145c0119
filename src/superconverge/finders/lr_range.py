"""The LR range test (Smith 2015, 2018): raise the LR step by step over a short run and record the loss.

``lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))`` (``mode="exp"``), or linear.
The sweep stops once the debiased running average of the loss passes ``diverge`` times its
best, or the loss stops being finite. Afterwards the model (weights, buffers, gradients,
train/eval modes), the optimizer (state and every param-group value) and every RNG are
exactly as before, also when the sweep blew up or raised: the test is a measurement, not
training. The model is moved to ``device`` and stays there. The data iterator cannot be
rewound; a Feed is simply read again from epoch 0.

Each recorded loss is that of the batch whose gradient step used ``lr_i`` (computed just
before that step), as fastai and Smith record it; with ``val_data`` it is the validation
loss just after that step.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import torch
from torch import nn

from superconverge.finders import suggest
from superconverge.finders.snapshot import restore, snapshot
from superconverge.optim import Scheduler
from superconverge.schedules import Schedule, constant, exponential, linear
from superconverge.train.runtime import Precision, autocast, pick_device, resolve_precision

LossFn = Callable[[Any, Any], torch.Tensor]
Data = Any  # a Feed (``feed(epoch) -> iterator``, ``len(feed)``) or any iterable of (x, y)
ParamGroup = Union[int, Literal["all"], None]


class DataCycledWarning(UserWarning):
    """The data ran out before the sweep ended and is being read again."""


@dataclass(frozen=True)
class LRFindResult:
    """One LR range test: the curve, the suggestions and how far to trust them.

    ``suggestion`` is the recommended 1cycle peak LR (``max_lr``); see
    :mod:`superconverge.finders.suggest` for what it means and why.
    """

    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # raw, one per optimizer step
    smoothed: tuple[float, ...]  # debiased EMA, the running view that stops the sweep
    suggestion: float
    suggestions: dict[str, float]
    band: tuple[float, float]
    reliable: bool
    advice: str
    stopped_early: str | None  # why the sweep ended before its last step, or None
    steps: int  # optimizer steps taken
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)  # settings of the run, for the record

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite losses become ``None``."""
        out = asdict(self)
        for key in ("losses", "smoothed"):
            out[key] = [v if math.isfinite(v) else None for v in out[key]]
        out["lrs"], out["band"] = list(self.lrs), list(self.band)
        return out

    def plot(self, path: str | Path, *, title: str = "LR range test") -> Path:
        """Loss against LR (log x) with the suggestions marked; saved as PNG."""
        from superconverge.finders.plots import plot_lr_find

        return plot_lr_find([self], path, title=title)


def lr_find(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    data: Data,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    smooth: float = 0.98,
    diverge: float = 4.0,
    accumulate: int = 1,
    val_data: Data | None = None,
    param_group: ParamGroup = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> LRFindResult:
    """Sweep the LR from ``start_lr`` to ``end_lr`` over ``steps`` optimizer steps; suggest a 1cycle peak.

    ``param_group`` picks the group to sweep when the optimizer has several (an index,
    or ``"all"``); the others keep their LR. ``accumulate`` batches make one step.
    ``val_data`` records the validation loss after each step instead (slower, smoother).

    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x = torch.randn(512, 8); y = (x[:, 0] > 0).long()
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    >>> batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)]
    >>> result = lr_find(model, opt, torch.nn.functional.cross_entropy, batches * 13, steps=100)
    >>> result.steps <= 100 and result.band[0] <= result.suggestion <= result.band[1]
    True
    """
    schedule = _check(start_lr, end_lr, steps, mode, smooth, diverge, accumulate)
    groups = _groups(optimizer, param_group)
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    model.to(dev)
    started = time.perf_counter()
    saved = snapshot(model, optimizer)  # first: reading val_data may draw from the RNGs too
    batches = _cycle(data, steps * accumulate)
    try:
        val = None if val_data is None else _materialize(val_data)
        lrs, losses, smoothed, reason = _sweep(model, optimizer, loss_fn, batches, schedule, groups, steps,
                                               smooth, diverge, accumulate, val, dev, prec)
    finally:
        batches.close()
        restore(model, optimizer, saved)
    seconds = time.perf_counter() - started
    finite = sum(math.isfinite(v) for v in losses)
    if finite < suggest.MIN_POINTS:
        raise ValueError(f"the sweep stopped after {len(losses)} steps ({reason}), leaving {finite} usable "
                         f"points; at least {suggest.MIN_POINTS} are needed to suggest anything. Lower "
                         f"start_lr (now {start_lr:g}) or end_lr (now {end_lr:g}), or run more steps.")
    names = suggest.suggest_all(lrs, losses)
    value, band, reliable, advice = suggest.consensus(lrs, losses, names)
    extra = {"start_lr": start_lr, "end_lr": end_lr, "mode": mode, "accumulate": accumulate,
             "validation": val_data is not None}
    return LRFindResult(tuple(lrs), tuple(losses), tuple(smoothed), value, names, band, reliable, advice,
                        reason, len(lrs), seconds, extra)


# -- the sweep ------------------------------------------------------------------------------


def _sweep(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batches: Iterator[Any],
           schedule: Schedule, groups: list[int], steps: int, beta: float, diverge: float, accumulate: int,
           val: list[Any] | None, dev: torch.device, prec: Precision
           ) -> tuple[list[float], list[float], list[float], str | None]:
    current = [float(g["lr"]) for g in optimizer.param_groups]
    drivers = [schedule if i in groups else constant(lr) for i, lr in enumerate(current)]
    sched = Scheduler(optimizer, {"lr": drivers}, past_end="hold")
    model.train()
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    for i in range(steps):
        if i:
            sched.step()
        lr = schedule.at(i)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(accumulate):
            x, y = to_device(next(batches), dev)
            with autocast(dev, prec):
                loss = loss_fn(model(x), y)
            (loss / accumulate).backward()
            total += loss.item()
        value = total / accumulate
        if i == 0:
            _check_first_step(value, optimizer)
        if math.isfinite(value):
            optimizer.step()
            if val is not None:
                value = _evaluate(model, loss_fn, val, dev, prec)
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            smoothed.append(math.nan)
            return lrs, losses, smoothed, f"non-finite loss ({value}) at lr {lr:.4g}"
        avg = beta * avg + (1 - beta) * value
        smoothed.append(avg / (1 - beta ** (i + 1)))
        best = min(best, smoothed[-1])
        # "diverge x its best" for positive losses; written so a negative best still makes sense.
        if smoothed[-1] - best > (diverge - 1) * abs(best):
            return lrs, losses, smoothed, (f"diverged: the smoothed loss {smoothed[-1]:.4g} passed {diverge:g} x "
                                           f"its best {best:.4g} at lr {lr:.4g}")
    return lrs, losses, smoothed, None


def _check_first_step(loss: float, optimizer: torch.optim.Optimizer) -> None:
    """Before any LR was applied, a non-finite loss or gradient is a fault of the model or data."""
    if math.isfinite(loss):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        # one check at the first step only: a NaN gradient would otherwise surface a step later as a
        # NaN loss and be blamed on the LR
        if not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            return
        what = f"the loss is finite ({loss:.4g}) but its gradients are not"
    else:
        what = f"the loss is {loss}"
    raise ValueError(f"{what} at the very first step, before the learning rate could change anything: the "
                     "model or the data is broken, not the LR. Check the inputs for NaN/inf, the labels "
                     "against the number of outputs, and the loss function.")


@torch.no_grad()
def _evaluate(model: nn.Module, loss_fn: LossFn, val: list[Any], dev: torch.device, prec: Precision) -> float:
    model.eval()
    total, n = 0.0, 0
    for batch in val:
        x, y = to_device(batch, dev)
        with autocast(dev, prec):
            loss = loss_fn(model(x), y)
        size = len(y) if hasattr(y, "__len__") else 1
        total, n = total + float(loss) * size, n + size
    model.train()
    return total / max(n, 1)


def to_device(batch: Any, dev: torch.device) -> Any:
    """A batch (tensor, or tuple/list/dict of them) moved to ``dev``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, dev) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, dev) for k, v in batch.items()}
    return batch


# -- data -----------------------------------------------------------------------------------


def _is_feed(data: Data) -> bool:
    return callable(data) and hasattr(data, "__len__") and not hasattr(data, "__iter__")


def _cycle(data: Data, needed: int) -> Iterator[Any]:
    """Batches without end: a Feed epoch after epoch, an iterable pass after pass (warned once)."""
    if _is_feed(data):
        def source(epoch: int) -> Iterable[Any]:
            return data(epoch)
    elif isinstance(data, Iterable):
        if iter(data) is data:  # a one-shot iterator: keep what it gave to replay it
            seen: list[Any] = []

            def source(epoch: int) -> Iterable[Any]:
                return _recording(data, seen) if epoch == 0 else list(seen)
        else:
            def source(epoch: int) -> Iterable[Any]:
                return data
    else:
        raise TypeError(f"data must be a Feed or an iterable of (x, y) batches, got {type(data).__name__}")
    epoch = 0
    while True:
        count = 0
        for batch in source(epoch):
            count += 1
            yield batch
        if count == 0:
            raise ValueError("the data yielded no batches")
        if epoch == 0:
            warnings.warn(f"the data ran out after {count} batches but the sweep needs {needed}; cycling it, so "
                          "the sweep sees the same examples again (give more data to avoid this)",
                          DataCycledWarning, stacklevel=4)
        epoch += 1


def _recording(data: Iterator[Any], seen: list[Any]) -> Iterator[Any]:
    for batch in data:
        seen.append(batch)
        yield batch


def _materialize(val_data: Data) -> list[Any]:
    batches = list(val_data(0)) if _is_feed(val_data) else list(val_data)
    if not batches:
        raise ValueError("val_data yielded no batches")
    return batches


# -- checks ---------------------------------------------------------------------------------


def _check(start_lr: float, end_lr: float, steps: int, mode: str, smooth: float, diverge: float,
           accumulate: int) -> Schedule:
    if not (isinstance(start_lr, (int, float)) and start_lr > 0 and math.isfinite(start_lr)):
        raise ValueError(f"start_lr must be a positive number, got {start_lr!r}")
    if not (isinstance(end_lr, (int, float)) and math.isfinite(end_lr)) or end_lr <= start_lr:
        raise ValueError(f"end_lr ({end_lr!r}) must be larger than start_lr ({start_lr!r}): the test sweeps the "
                         "LR upwards, typically from 1e-7 to 10")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < suggest.MIN_POINTS:
        raise ValueError(f"steps={steps!r} is too few to suggest anything: the suggestions need at least "
                         f"{suggest.MIN_POINTS} points (100 is usual)")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth must lie in [0, 1), got {smooth}")
    if not diverge > 1:
        raise ValueError(f"diverge must be > 1 (the sweep stops at diverge x the best loss), got {diverge}")
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"accumulate must be a positive integer, got {accumulate!r}")
    if mode == "exp":
        return exponential(start_lr, end_lr, steps - 1)
    if mode == "linear":
        return linear(start_lr, end_lr, steps - 1)
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


def _groups(optimizer: torch.optim.Optimizer, param_group: ParamGroup) -> list[int]:
    n = len(optimizer.param_groups)
    if param_group == "all":
        return list(range(n))
    if param_group is None:
        if n > 1:
            raise ValueError(f"the optimizer has {n} param groups; say which to sweep with param_group=INDEX "
                             "(0..{}) or param_group='all' to sweep them together".format(n - 1))
        return [0]
    if isinstance(param_group, bool) or not isinstance(param_group, int) or not 0 <= param_group < n:
        raise ValueError(f"param_group must be an index in 0..{n - 1} or 'all', got {param_group!r}")
    return [param_group]
