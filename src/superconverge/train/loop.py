"""The fit loop: any model, optimizer and schedules; checkpoints that resume exactly.

One optimizer step = ``accumulate`` batches (the last partial group of an epoch steps
too). The loop writes every scheduled value into the optimizer each step through
:class:`~superconverge.optim.Scheduler`, so resuming needs only the step number, which
the checkpoint holds with everything else (weights, optimizer, EMA, fp16 loss scale, RNGs,
history).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from superconverge.optim import Scheduler
from superconverge.schedules import Schedule
from superconverge.train import checkpoint as ckpt
from superconverge.train import distributed as dist
from superconverge.train.feed import Feed
from superconverge.train.records import History, write_records
from superconverge.train.runtime import Precision, autocast, is_schedule_free, pick_device, resolve_precision

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CHECKPOINT = "checkpoint.pt"


class DivergedError(RuntimeError):
    """Training stopped because the loss became non-finite or exploded."""


@dataclass(frozen=True)
class FitOptions:
    """How to run a fit; what to train is given by the objects passed to :func:`fit`."""

    device: str = "auto"
    precision: Precision = "auto"  # bf16 autocast on CPU and capable GPUs, fp16 on others
    channels_last: bool = True
    accumulate: int = 1  # batches per optimizer step
    grad_clip: float | None = None  # max global gradient norm
    label_smoothing: float = 0.0  # used by the default cross-entropy loss
    loss_reduction: Literal["mean", "sum"] = "mean"  # "sum": gradients summed over the batch (Myrtle)
    ema_decay: float | None = None  # evaluate an exponential moving average of the weights
    divergence_factor: float = 10.0  # stop when the smoothed loss exceeds this x its best
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at epoch ends only)
    plateau_metric: Literal["val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss"] = "val_loss"
    progress: bool = True


@dataclass
class _Position:
    epoch: int = 0
    batch: int = 0  # next batch within the epoch
    step: int = 0  # optimizer steps done
    seconds: float = 0.0  # training time before this process started
    best_loss: float = math.inf
    smooth: float = 0.0
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # this epoch: loss*n, correct, n


def cross_entropy(label_smoothing: float = 0.0, reduction: Literal["mean", "sum"] = "mean") -> LossFn:
    """Cross-entropy whose value is always the batch mean (for records and the divergence guard).

    With ``reduction="sum"`` the gradient is the batch sum: ``s - s.detach()`` is zero in
    value and carries the gradient of the sum ``s``.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {reduction!r}")

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if reduction == "mean":
            return F.cross_entropy(out, y, label_smoothing=label_smoothing)
        total = F.cross_entropy(out, y, reduction="sum", label_smoothing=label_smoothing)
        return total - total.detach() + total.detach() / len(y)

    return loss


def steps_per_epoch(feed: Feed, accumulate: int) -> int:
    return math.ceil(len(feed) / accumulate)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    policy: Mapping[str, Schedule] | Scheduler,
    train: Feed,
    *,
    epochs: int,
    test: Feed | None = None,
    val: Feed | None = None,
    loss_fn: LossFn | None = None,
    options: FitOptions = FitOptions(),
    run_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> History:
    """Train ``model`` for ``epochs`` over ``train``, evaluating on ``test`` (and a held-out
    ``val`` split, recorded as ``val_loss`` / ``val_accuracy``) after each epoch.

    With ``run_dir`` a checkpoint is written atomically before the first step, at every
    epoch end (and every ``options.checkpoint_every`` steps); ``resume=True`` continues
    from it exactly. Each epoch end also writes ``history.csv`` and ``steps.jsonl`` there.
    Raises :class:`DivergedError` naming the step and LR when the loss blows up, or when a
    checkpoint would hold weights that are not finite; the last good checkpoint stays.
    ``on_epoch`` receives each epoch's record (for logging).

    A schedule-free optimizer (:func:`~superconverge.train.runtime.is_schedule_free`) steps in
    train mode; at each epoch end it is switched to eval mode (the averaged weights, with batch-norm
    statistics recomputed for them by :func:`recompute_bn_stats`), so evaluation, the epoch-end
    checkpoint and the model ``fit`` returns hold the weights to use. Checkpoints within an epoch
    keep train mode (switching would change the run's arithmetic). The optimizer's state holds its
    mode, and each epoch starts with ``optimizer.train()``, so a resumed run is bitwise the same.
    """
    device = pick_device(options.device)
    precision = resolve_precision(options.precision, device)
    model.to(device)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    sched = policy if isinstance(policy, Scheduler) else Scheduler(optimizer, policy)
    watched = {"val": val, "test": test}.get(options.plateau_metric.split("_")[0], train)
    if sched.metric_driven and watched is None:
        raise ValueError(f"the plateau schedule watches {options.plateau_metric}, which this fit does not "
                         f"measure: pass {options.plateau_metric.split('_')[0]}=<a held-out feed> to fit(), or "
                         "set FitOptions(plateau_metric=...) to a metric it measures")
    loss_fn = loss_fn or cross_entropy(options.label_smoothing, options.loss_reduction)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(options.ema_decay), use_buffers=True) \
        if options.ema_decay else None
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    net = dist.wrap(model)
    history, pos = History(), _Position()
    path = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    if resume:
        if path is None or not path.is_file():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {run_dir}")
        pos, history = _restore(ckpt.load(path), model, optimizer, sched, ema, scaler)

    per_epoch = len(train)
    started = time.perf_counter() - pos.seconds
    if path and not resume:  # so that a run killed in its first epoch can resume
        _save(path, model, optimizer, sched, ema, scaler, pos, history, started)
    written = 0  # steps this process wrote to steps.jsonl; the first write replaces the file
    schedule_free = is_schedule_free(optimizer)
    while pos.epoch < epochs:
        net.train()
        if schedule_free:
            optimizer.train()  # from the weights an epoch-end checkpoint holds (eval mode) to those it steps from
        sums = list(pos.sums)  # loss * n, correct, n; a resumed epoch keeps its counts
        group_loss = 0.0  # mean over the accumulation group, so the guard sees every batch
        batches = _progress(train(pos.epoch, pos.batch, dist.shard()), per_epoch, pos, options.progress)
        for x, y in batches:
            x, y = _to(x, device, options.channels_last), y.to(device, non_blocking=True)
            with autocast(device, precision):
                out = net(x)
                loss = loss_fn(out, y)
            group = _group_size(pos.batch, per_epoch, options.accumulate)
            part = loss / group if group > 1 else loss
            (scaler.scale(part) if scaler else part).backward()
            value = loss.item()
            group_loss += value / group
            sums[0] += value * len(y)
            sums[1] += (out.argmax(1) == y).sum().item()
            sums[2] += len(y)
            pos.batch += 1
            if pos.batch % options.accumulate and pos.batch < per_epoch:
                continue  # keep accumulating gradients
            lrs = sched.get_last_lr()
            _guard(group_loss, pos, options.divergence_factor, lrs[0], path)
            _step(model, optimizer, scaler, options.grad_clip)
            row = {"step": pos.step, "epoch": pos.epoch, "loss": group_loss, "lr": lrs[0]}
            group_loss = 0.0
            row.update({k: v[0] for k, v in sched.last_values.items() if k != "lr"})
            history.steps.append(row)
            pos.step += 1
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            if hasattr(batches, "set_postfix"):
                smooth = pos.smooth / (1 - 0.98**pos.step)  # debiased, as in _guard
                batches.set_postfix(loss=f"{smooth:.3f}", lr=f"{lrs[0]:.3g}", refresh=False)
            if path and options.checkpoint_every and pos.step % options.checkpoint_every == 0 \
                    and pos.batch < per_epoch:
                pos.sums = list(sums)
                _save(path, model, optimizer, sched, ema, scaler, pos, history, started)
        train_loss, train_correct, seen = dist.all_sum(torch.tensor(sums, dtype=torch.float64)).tolist()
        row = {"epoch": pos.epoch, "train_loss": train_loss / seen, "train_accuracy": train_correct / seen}
        if schedule_free:
            optimizer.eval()
            recompute_bn_stats(model, train, pos.epoch, device=device, precision=precision,
                               channels_last=options.channels_last)
        for name, feed in (("val", val), ("test", test)):
            if feed is not None:
                loss, acc = evaluate(ema.module if ema else model, feed, loss_fn, device=device,
                                     precision=precision, channels_last=options.channels_last)
                row.update({f"{name}_loss": loss, f"{name}_accuracy": acc})
        row["seconds"] = time.perf_counter() - started
        history.epochs.append(row)
        if on_epoch is not None and dist.rank() == 0:
            on_epoch(row)
        if sched.metric_driven:
            sched.observe(row[options.plateau_metric])
        pos.epoch, pos.batch, pos.sums = pos.epoch + 1, 0, [0.0, 0.0, 0.0]
        if path:
            _save(path, model, optimizer, sched, ema, scaler, pos, history, started)
            written = write_records(path.parent, history, written)
    if path and resume and not written:  # resumed after the last checkpoint but before its records were written
        write_records(path.parent, history, 0)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: Feed, loss_fn: LossFn | None = None, *, device: torch.device | None = None,
             precision: Precision = "fp32", channels_last: bool = True, flip_tta: bool = False) -> tuple[float, float]:
    """(mean loss, accuracy) of ``model`` over one pass of ``data``; ``flip_tta`` averages with mirrored inputs."""
    loss_fn = loss_fn or F.cross_entropy
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for x, y in data(0, 0, dist.shard()):
        x, y = _to(x, device, channels_last), y.to(device)
        with autocast(device, precision):
            out = model(x).float()
            if flip_tta:
                out = (out + model(x.flip(3)).float()) / 2
        sums += torch.tensor([loss_fn(out, y).item() * len(y), (out.argmax(1) == y).sum().item(), len(y)],
                             dtype=torch.float64)
    model.train(was_training)
    loss, correct, n = dist.all_sum(sums).tolist()
    return loss / n, correct / n


def recompute_bn_stats(model: nn.Module, data: Feed, epoch: int = 0, *, batches: int = 50,
                       device: torch.device | None = None, precision: Precision = "fp32",
                       channels_last: bool = True) -> bool:
    """Replace batch-norm running statistics with those of the model's current weights; False without batch norm.

    A schedule-free optimizer evaluates other weights (eval mode) than those training gathered the
    statistics for. As its authors advise, the first ``batches`` batches of ``data`` (that epoch's
    order) are forwarded in train mode without gradients; the statistics are reset first and
    averaged equally over those batches (torch's ``update_bn``), so no trace of the old ones stays.

    >>> from superconverge.train.feed import ArrayFeed
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4))
    >>> feed = ArrayFeed(torch.randint(0, 255, (64, 2, 2, 3), dtype=torch.uint8), torch.zeros(64, dtype=torch.long), 16)
    >>> recompute_bn_stats(net, feed, batches=3), int(net[2].num_batches_tracked)
    (True, 3)
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules()):
        return False
    device = device or next(model.parameters()).device
    inputs = (_to(x, device, channels_last) for x, _ in itertools.islice(data(epoch, 0, dist.shard()), batches))
    with autocast(device, precision):  # the precision training computed its statistics in
        update_bn(inputs, model)
    return True


def _to(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def _group_size(batch: int, per_epoch: int, accumulate: int) -> int:
    """Batches in the accumulation group that ``batch`` belongs to (the last may be short)."""
    start = batch - batch % accumulate
    return min(accumulate, per_epoch - start)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
          grad_clip: float | None) -> None:
    """One optimizer step. With a scaler the gradients are unscaled before clipping, and a
    step whose gradients overflowed is skipped (the scaler then lowers its scale)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad(set_to_none=True)


def _guard(loss: float, pos: _Position, factor: float, lr: float, path: Path | None) -> None:
    """Stop on a non-finite or exploding loss, naming the step and learning rate.

    Exploding: the smoothed loss (a debiased moving average) exceeds ``factor`` x a reference,
    checked from the second step on. For the first ten steps the reference is the first step's
    loss, taken before any step (the average of a few noisy early losses can dip far below it),
    and the limit is ``factor**2`` x it: a brief spike at a high starting LR often recovers. From
    then on it is ``factor`` x the best smoothed loss.
    """
    if not math.isfinite(loss):
        raise DivergedError(f"the loss is {loss} at step {pos.step} (epoch {pos.epoch}, lr {lr:.4g}): "
                            f"training diverged; lower the learning rate.{_kept(path)}")
    pos.smooth = 0.98 * pos.smooth + 0.02 * loss
    smooth = pos.smooth / (1 - 0.98 ** (pos.step + 1))
    settling = 10  # steps before the smoothed loss averages enough batches to set the reference
    # early on a transient spike (10-20x the first loss at a high starting LR) often recovers; 100x does not
    limit = (factor if pos.step >= settling else factor**2) * pos.best_loss  # best_loss: inf before step 0
    if smooth > limit:
        reference = "first step's loss" if pos.step < settling else "best"
        raise DivergedError(f"the loss exploded to {smooth:.4g} ({reference} {pos.best_loss:.4g}) at step "
                            f"{pos.step} (epoch {pos.epoch}, lr {lr:.4g}); lower the learning rate.{_kept(path)}")
    if pos.step == 0 or pos.step >= settling:
        pos.best_loss = min(pos.best_loss, smooth)


def _kept(path: Path | None) -> str:
    return f" The last good checkpoint is {path}." if path is not None and path.is_file() else ""


def _progress(batches: Any, total: int, pos: _Position, enabled: bool) -> Any:
    if not enabled or dist.rank() != 0:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, total=total, initial=pos.batch, desc=f"epoch {pos.epoch + 1}", leave=False,
                dynamic_ncols=True)


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sched: Scheduler,
          ema: AveragedModel | None, scaler: torch.amp.GradScaler | None, pos: _Position, history: History,
          started: float) -> None:
    """Checkpoint the run; weights that are not finite raise instead, keeping the last good checkpoint.

    The checkpoint replaced is kept as the previous one, except by a run's first save (no steps
    yet), which removes a previous checkpoint some earlier run left there.
    """
    bad = next((k for k, t in model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()), None)
    if bad is not None and not history.steps:  # checked on every rank, so that all of them stop
        raise ValueError(f"the initial weights ({bad}) are not finite, before any step: the model or its "
                         "initialisation is broken, not the learning rate")
    if bad is not None:
        last = history.steps[-1]
        raise DivergedError(f"the weights ({bad}) are not finite after step {last['step']} (epoch {last['epoch']}, "
                            f"lr {last['lr']:.4g}): training diverged; lower the learning rate.{_kept(path)}")
    if dist.rank() != 0:
        return
    ckpt.save(path, {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": sched.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "position": {**vars(pos), "seconds": time.perf_counter() - started},
        "history": {"steps": history.steps, "epochs": history.epochs},
        "rng": ckpt.rng_state(),
    }, keep_previous=bool(history.steps))


def _restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, sched: Scheduler,
             ema: AveragedModel | None, scaler: torch.amp.GradScaler | None) -> tuple[_Position, History]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    ckpt.set_rng_state(state["rng"])
    history = History([dict(r) for r in state["history"]["steps"]], [dict(r) for r in state["history"]["epochs"]])
    return _Position(**state["position"]), history
