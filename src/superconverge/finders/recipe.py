"""The finders on a :class:`TrainConfig`: the model, data, augmentation and optimizer a run would use.

"It's very important to run the Learning Rate Finder with the exact same conditions as
during our training" (Gugger): so the finders here read everything from the config the
training will read, and :func:`tune` writes its answer back as such a config.

:func:`tune` chains Smith's order: the batch size first (the largest that fits), then weight
decay (the largest that still allows a high LR), whose chosen sweep gives 1cycle's peak LR.
The sweeps run at momentum ``base_momentum`` (0.85; Adam's beta1): the momentum 1cycle uses
at its peak LR, which is the LR being looked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain, count
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from superconverge import __version__
from superconverge.finders.batch_size import BatchSizeResult, find_batch_size
from superconverge.finders.lr_range import LRFindResult, lr_find
from superconverge.finders.memory import gib
from superconverge.finders.probe import ProbeResult, candidates, probe
from superconverge.finders.weight_decay import WDSweepResult, wd_sweep
from superconverge.train.cifar import Cifar10
from superconverge.train.loop import cross_entropy
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig
from superconverge.train.run import feeds, load_data
from superconverge.train.runtime import build_optimizer, pick_device, threads

DEFAULT_WEIGHT_DECAYS = (0.0, 1e-5, 1e-4, 1e-3)  # Smith's and Gugger's grid
MIN_STEPS_PER_EPOCH = 8  # tune keeps at least this many optimizer steps per epoch
PROBE_STEPS = 50  # optimizer steps per probe: three cost 1.5x a 100-step range test


@dataclass(frozen=True)
class Tuned:
    """What :func:`tune` found: the config to train, how each value was found, and the evidence."""

    config: TrainConfig
    comment: str
    batch: BatchSizeResult | None
    sweep: WDSweepResult
    probe: ProbeResult | None = None


def _model(config: TrainConfig, classes: int) -> nn.Module:
    torch.manual_seed(config.seed)  # the same initial weights as the run
    return build_model(config.model, num_classes=classes)


def _optimizer(config: TrainConfig, momentum: float, model: nn.Module, weight_decay: float) -> torch.optim.Optimizer:
    return build_optimizer(config.optimizer, model.parameters(), lr=config.max_lr, momentum=momentum,
                           weight_decay=weight_decay)


def _loss(config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    # the training engine's loss: with loss_reduction = "sum" the sweep's LRs are per example, as max_lr is
    return cross_entropy(config.label_smoothing, config.loss_reduction)  # type: ignore[arg-type]


def _train_size(config: TrainConfig, data: Cifar10) -> int:
    return min(config.train_subset or len(data.train_labels), len(data.train_labels))


def lr_find_config(config: TrainConfig, *, weight_decays: Sequence[float] | None = None, momentum: float | None = None,
                   data: Cifar10 | None = None, **lr_find_kwargs: Any) -> LRFindResult | WDSweepResult:
    """One LR range test at ``config.weight_decay``, or a weight-decay sweep when several are given.

    ``momentum`` defaults to ``config.momentum``; other keywords go to :func:`lr_find`.
    """
    data = data if data is not None else load_data(config.data)
    train, _ = feeds(config, data)
    momentum = config.momentum if momentum is None else momentum
    kwargs = {"device": config.device, "precision": config.precision, "accumulate": config.accumulate,
              **lr_find_kwargs}
    with threads(config.threads):
        if weight_decays is None or len(weight_decays) == 1:
            wd = config.weight_decay if weight_decays is None else float(weight_decays[0])
            model = _model(config, len(data.classes))
            return lr_find(model, _optimizer(config, momentum, model, wd), _loss(config), train, **kwargs)
        return wd_sweep(partial(_model, config, len(data.classes)), partial(_optimizer, config, momentum),
                        _loss(config), train, weight_decays, **kwargs)


def probe_config(config: TrainConfig, suggestion: float, *, weight_decay: float | None = None,
                 momentum: float | None = None, data: Cifar10 | None = None, probes: int = 3,
                 steps: int = PROBE_STEPS) -> ProbeResult:
    """The range test's second stage on the run's own model and data: ``probes`` short 1cycles at the
    suggestion and each 3x lower (:func:`~superconverge.finders.probe.probe`), picked by held-out loss."""
    data = data if data is not None else load_data(config.data)
    train, _ = feeds(config, data)
    batches = chain.from_iterable(train(epoch) for epoch in count())  # fresh augmented batches, epoch after epoch
    wd = config.weight_decay if weight_decay is None else weight_decay
    with threads(config.threads):
        model = _model(config, len(data.classes)).to(pick_device(config.device))
        optimizer = _optimizer(config, config.momentum if momentum is None else momentum, model, wd)
        return probe(model, optimizer, _loss(config), batches, candidates(suggestion, probes), steps=steps)


def tune(config: TrainConfig, *, weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
         batch_size: int | None = None, max_batch: int = 512, memory_budget_bytes: int | None = None,
         steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0, probes: int = 3) -> Tuned:
    """Batch size, then weight decay and 1cycle's peak LR, as a ready config (schedule ``one-cycle``).

    With ``batch_size`` the batch search is skipped. The search is capped at ``max_batch`` and
    at a batch that leaves ``MIN_STEPS_PER_EPOCH`` steps per epoch.
    """
    data = load_data(config.data)
    n_train = _train_size(config, data)
    batch = None
    if batch_size is None:
        cap = max(1, min(max_batch, n_train // MIN_STEPS_PER_EPOCH))

        def sample(b: int) -> tuple[torch.Tensor, torch.Tensor]:
            return next(iter(feeds(config.replace(batch_size=b), data)[0](0)))

        with threads(config.threads):
            batch = find_batch_size(partial(_model, config, len(data.classes)),
                                    lambda m: _optimizer(config, config.base_momentum, m, config.weight_decay),
                                    _loss(config), sample, memory_budget_bytes=memory_budget_bytes,
                                    max_batch=cap, start=min(16, cap), device=config.device,
                                    precision=config.precision)  # type: ignore[arg-type]
        batch_size = batch.batch_size
    config = config.replace(batch_size=batch_size)
    sweep = lr_find_config(config, weight_decays=weight_decays, momentum=config.base_momentum, data=data,
                           steps=steps, start_lr=start_lr, end_lr=end_lr)
    if isinstance(sweep, LRFindResult):  # a single weight decay: a sweep of one
        sweep = WDSweepResult((float(weight_decays[0]),), (sweep,), float(weight_decays[0]), sweep.suggestion,
                              f"weight decay {float(weight_decays[0]):g} was the only value given.")
    max_lr, probed = sweep.max_lr, None
    if probes:
        probed = probe_config(config, sweep.max_lr, weight_decay=sweep.pick, momentum=config.base_momentum, data=data,
                              probes=probes)
        max_lr = probed.pick
    tuned = config.replace(schedule="one-cycle", max_lr=max_lr, weight_decay=sweep.pick, cycle_momentum=True)
    comment = _comment(tuned, n_train, batch, max_batch, sweep, steps, start_lr, end_lr, probed)
    return Tuned(tuned, comment, batch, sweep, probed)


def _comment(config: TrainConfig, n_train: int, batch: BatchSizeResult | None, max_batch: int,
             sweep: WDSweepResult, steps: int, start_lr: float, end_lr: float, probed: ProbeResult | None) -> str:
    best = sweep.best
    names = ", ".join(f"{k} {v:.3g}" for k, v in best.suggestions.items())
    if batch is None:
        how_batch = "given on the command line (no search)."
    else:
        peak = next(t.peak_bytes for t in batch.trials if t.batch_size == batch.batch_size)
        how_batch = (f"the largest tried whose training step fit {1 - batch.margin:.0%} of the "
                     f"{gib(batch.budget_bytes)} budget (peak {gib(peak or 0)}, measured as {batch.method}), "
                     f"searched up to {min(max_batch, n_train // MIN_STEPS_PER_EPOCH)} (max_batch {max_batch}, "
                     f"and at least {MIN_STEPS_PER_EPOCH} steps per epoch of {n_train} images).")
        if batch.saturates_at is not None and batch.saturates_at < batch.batch_size:
            how_batch += f" Throughput was already within 10% of its best at batch {batch.saturates_at}."
    per = " per example (the loss is summed over the batch, as training sums it)" \
        if config.loss_reduction == "sum" else ""
    lines = [
        f"Written by superconverge {__version__} tune: {config.model} on {config.data} ({n_train} training images).",
        "Train it with: superconverge train --config THIS_FILE",
        "",
        f"batch_size = {config.batch_size}: {how_batch}",
        f"weight_decay = {config.weight_decay:g}: one LR range test per value of "
        f"{', '.join(f'{w:g}' for w in sweep.weight_decays)}; {sweep.reason}",
        f"max_lr = {config.max_lr:.4g}: 1cycle's peak{per}. The LR range test at that weight decay "
        f"({best.steps} of {steps} steps from {start_lr:g} to {end_lr:g}, batch {config.batch_size}, momentum "
        f"{config.base_momentum:g}) suggested {sweep.max_lr:.4g}, just below where the loss stopped falling. "
        f"Markers: {names}; band {best.band[0]:.3g} (cautious) to {best.band[1]:.3g} (where the loss turns up); "
        f"{'reliable' if best.reliable else 'NOT reliable'}.",
        f"  {best.advice}",
        *([f"  Probes ({probed.steps}-step 1cycles, held-out loss): "
           + ", ".join(f"{c:.3g} -> {v:.4g}" for c, v in zip(probed.candidates, probed.losses))
           + f"; picked {probed.pick:.4g}."] if probed else []),
        f"base_momentum, max_momentum = {config.base_momentum:g}, {config.max_momentum:g}: Smith's cyclical "
        "momentum, falling while the LR rises; the sweeps ran at the base value, the momentum at the peak LR.",
        f"epochs = {config.epochs}, pct_start = {config.pct_start:g}, div_factor = {config.div_factor:g}: "
        "not tuned (1cycle defaults or given).",
    ]
    return "\n".join(lines)
