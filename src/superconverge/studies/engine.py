"""How the study runner trains one run: ``run.train`` as it is, or with the loss summed over the batch.

``superconverge.train`` averages the loss over a batch and has no setting to sum it, so
``loss_reduction = "sum"`` is done here. Summed, the gradient of a batch of B examples is B
times the averaged one, so the LR and the weight-decay coefficient are given per example:
``lr = max_lr / reference_batch`` and ``wd = weight_decay * reference_batch``, fixed
whatever the batch size. At ``batch_size == reference_batch`` that is exactly the
averaged run; at 4x the batch it is averaged training with 4x the LR and 1/4 of the
weight decay, which is what Myrtle's "summed gradients change nothing to first order"
predicts. (This module would shrink to one line if TrainConfig and FitOptions had a
``loss_reduction`` setting.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from superconverge.train.loop import FitOptions, fit, steps_per_epoch
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig, build_policy
from superconverge.train.run import feeds, load_data, prepare_dir, summarize, train, write_records
from superconverge.train.runtime import build_optimizer, threads


def train_run(config: TrainConfig, extras: dict[str, Any], out: Path, *, resume: bool) -> dict[str, Any]:
    """Train one run into ``out`` (resuming from its checkpoint when asked); returns its summary.

    The summary also holds ``lr_mean_equivalent`` and ``wd_mean_equivalent``: the peak LR and
    weight decay that averaged-loss SGD would need to take the same steps.
    """
    reduction = extras.get("loss_reduction", "mean")
    if reduction == "mean":
        summary = train(config, out, resume=resume, force=not resume, progress=False)
        return {**summary, "lr_mean_equivalent": config.max_lr, "wd_mean_equivalent": config.weight_decay}
    if reduction != "sum":
        raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {reduction!r}")
    if config.optimizer not in ("sgd", "nesterov"):
        raise ValueError("loss_reduction = 'sum' is defined for SGD only: Adam-family updates do not scale "
                         "with the gradient")
    ref = extras.get("reference_batch", 128)
    k = config.batch_size / ref
    summary = train_summed(config.replace(max_lr=config.max_lr / ref, weight_decay=config.weight_decay * ref),
                           out, resume=resume)
    # sum over B examples = B x the mean: lr_s * B * (g + wd_s / B * w)
    return {**summary, "lr_mean_equivalent": config.max_lr * k, "wd_mean_equivalent": config.weight_decay / k}


def summed_cross_entropy(label_smoothing: float = 0.0):
    """Cross-entropy whose gradient is the batch sum but whose value is the batch mean.

    The value feeds the loop's records and divergence guard, which expect a mean;
    ``s - s.detach()`` is zero in value and carries the gradient of the sum.
    """
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = F.cross_entropy(out, y, reduction="sum", label_smoothing=label_smoothing)
        return total - total.detach() + total.detach() / len(y)

    return loss


def train_summed(config: TrainConfig, out: str | Path, *, resume: bool) -> dict[str, Any]:
    """``run.train`` with :func:`summed_cross_entropy`; ``config`` holds the per-example LR and WD."""
    out = Path(out)
    config = prepare_dir(out, config, resume=resume, force=not resume)
    started = time.perf_counter()
    data = load_data(config.data)
    train_feed, test_feed = feeds(config, data)
    with threads(config.threads):
        torch.manual_seed(config.seed)
        model = build_model(config.model, num_classes=len(data.classes))
        per_epoch = steps_per_epoch(train_feed, config.accumulate)
        optimizer = build_optimizer(config.optimizer, model.parameters(), lr=config.max_lr,
                                    momentum=config.momentum, weight_decay=config.weight_decay)
        options = FitOptions(device=config.device, precision=config.precision,  # type: ignore[arg-type]
                             channels_last=config.channels_last, accumulate=config.accumulate,
                             grad_clip=config.grad_clip, checkpoint_every=config.checkpoint_every,
                             plateau_metric=config.plateau_metric, progress=False)  # type: ignore[arg-type]
        fit_started = time.perf_counter()
        history = fit(model, optimizer, build_policy(config, per_epoch), train_feed, epochs=config.epochs,
                      test=test_feed, loss_fn=summed_cross_entropy(config.label_smoothing), options=options,
                      run_dir=out, resume=resume)
    summary = summarize(config, history, per_epoch, time.perf_counter() - started, time.perf_counter() - fit_started)
    write_records(out, history, summary)
    return summary
