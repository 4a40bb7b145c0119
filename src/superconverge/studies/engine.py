"""How the study runner trains one run: ``run.train``, with the LR given per example when the loss is summed.

Summed (``loss_reduction = "sum"``), the gradient of a batch of B examples is B
times the averaged one, so the LR and the weight-decay coefficient are given per example:
``lr = max_lr / reference_batch`` and ``wd = weight_decay * reference_batch``, fixed
whatever the batch size. At ``batch_size == reference_batch`` that is exactly the
averaged run; at 4x the batch it is averaged training with 4x the LR and 1/4 of the
weight decay, which is what Myrtle's "summed gradients change nothing to first order"
predicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superconverge.train.recipe import TrainConfig
from superconverge.train.run import train


def train_run(config: TrainConfig, extras: dict[str, Any], out: Path, *, resume: bool) -> dict[str, Any]:
    """Train one run into ``out`` (resuming from its checkpoint when asked); returns its summary.

    The summary also holds ``lr_mean_equivalent`` and ``wd_mean_equivalent``: the peak LR and
    weight decay that averaged-loss SGD would need to take the same steps. On resume the run
    takes the runner's thread count (its share of the cores), not the one it was started with.
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
    per_example = config.replace(max_lr=config.max_lr / ref, weight_decay=config.weight_decay * ref,
                                 loss_reduction="sum")
    summary = train(per_example, out, resume=resume, force=not resume, progress=False)
    # sum over B examples = B x the mean: lr_s * B * (g + wd_s / B * w)
    return {**summary, "lr_mean_equivalent": config.max_lr * k, "wd_mean_equivalent": config.weight_decay / k}

