"""How the study runner trains one run: ``run.train``, with the LR given per example when the loss is summed.

Summed (``loss_reduction = "sum"``), the gradient of a batch of B examples is B
times the averaged one, so the LR and the weight-decay coefficient are given per example:
``lr = max_lr / reference_batch`` and ``wd = weight_decay * reference_batch``, fixed
whatever the batch size. At ``batch_size == reference_batch`` that is exactly the
averaged run; at 4x the batch it is averaged training with 4x the LR and 1/4 of the
weight decay, which is what Myrtle's "summed gradients change nothing to first order"
predicts.

On resume ``run.train`` runs the config saved in the run directory, so the thread count the
runner gives now (its share of the cores) is written there first: a run started with more
threads must not oversubscribe the cores when it resumes beside other jobs.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any

import torch

from superconverge import __version__
from superconverge.train.recipe import TrainConfig, load_toml, to_toml
from superconverge.train.run import CONFIG, train
from superconverge.train.runtime import pick_device, resolve_precision


def train_run(config: TrainConfig, extras: dict[str, Any], out: Path, *, resume: bool) -> dict[str, Any]:
    """Train one run into ``out`` (resuming from its checkpoint when asked); returns its summary.

    The summary also holds ``lr_mean_equivalent`` and ``wd_mean_equivalent``: the peak LR and
    weight decay that averaged-loss SGD would need to take the same steps; and how it computed:
    ``precision`` (what ``auto`` resolved to), ``device``, ``torch_version`` and ``threads`` (the
    intra-op threads torch actually had while training).
    """
    if resume:
        _set_threads(out, config.threads)
    used: list[int] = []

    def on_epoch(row: dict[str, float]) -> None:  # called inside train's threads() context
        used.append(torch.get_num_threads())

    reduction = extras.get("loss_reduction", "mean")
    if reduction == "mean":
        summary = train(config, out, resume=resume, force=not resume, progress=False, on_epoch=on_epoch)
        return {**summary, "lr_mean_equivalent": config.max_lr, "wd_mean_equivalent": config.weight_decay,
                **_machine(out, used)}
    if reduction != "sum":
        raise ValueError(f"loss_reduction must be 'mean' or 'sum', got {reduction!r}")
    if config.optimizer not in ("sgd", "nesterov"):
        raise ValueError("loss_reduction = 'sum' is defined for SGD only: Adam-family updates do not scale "
                         "with the gradient")
    ref = extras.get("reference_batch", 128)
    k = config.batch_size / ref
    per_example = config.replace(max_lr=config.max_lr / ref, weight_decay=config.weight_decay * ref,
                                 loss_reduction="sum")
    summary = train(per_example, out, resume=resume, force=not resume, progress=False, on_epoch=on_epoch)
    # sum over B examples = B x the mean: lr_s * B * (g + wd_s / B * w)
    return {**summary, "lr_mean_equivalent": config.max_lr * k, "wd_mean_equivalent": config.weight_decay / k,
            **_machine(out, used)}


def _machine(out: Path, threads_seen: list[int]) -> dict[str, Any]:
    """How the run computed, from the config it ran (the saved one, on resume), as fit resolves it."""
    ran = load_toml(out / CONFIG)
    device = pick_device(ran.device)
    return {"precision": resolve_precision(ran.precision, device), "device": str(device),  # type: ignore[arg-type]
            "torch_version": torch.__version__, "threads": max(threads_seen, default=None)}


def _set_threads(out: Path, threads: int | None) -> None:
    """Make the saved config of a run to resume use ``threads`` (threads are not part of a run's identity)."""
    saved = load_toml(out / CONFIG)
    if threads is not None and saved.threads != threads:
        tmp = out / f".{CONFIG}.part"  # then rename: a kill mid-write must not break the run's config
        tmp.write_text(to_toml(saved.replace(threads=threads), f"superconverge {__version__} training "
                               f"run (resumed with {threads} threads)"))
        os.replace(tmp, out / CONFIG)
