"""Measurements a study takes beyond a plain training run, named by ``measure = [...]`` in a spec.

Each is a function ``(config, extras, run_dir) -> metrics``; ``BEFORE`` ones run before
training (from the run's initial weights), ``AFTER`` ones on the trained run directory.
Their results are plain numbers and lists, stored with the run's metrics.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from superconverge.train import checkpoint as ckpt
from superconverge.train.loop import CHECKPOINT
from superconverge.train.models import build_model
from superconverge.train.recipe import TrainConfig
from superconverge.train.run import feeds, load_data
from superconverge.train.runtime import build_optimizer, threads

Measure = Callable[[TrainConfig, dict[str, Any], Path], dict[str, Any]]


def range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: Any, *, start_lr: float,
               end_lr: float, steps: int) -> dict[str, Any]:
    """An LR range test as plain data (lrs, losses, smoothed, suggestion), via :mod:`superconverge.finders`.

    The one place a study calls the finder, so a change of its API is one change here.
    """
    from superconverge.finders import DataCycledWarning, lr_find

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataCycledWarning)  # small subsets are read several times on purpose
        result = lr_find(model, optimizer, F.cross_entropy, data, start_lr=start_lr, end_lr=end_lr, steps=steps)
    finite = [v for v in result.smoothed if math.isfinite(v)]
    return {"lrs": list(result.lrs), "losses": [v if math.isfinite(v) else None for v in result.losses],
            "smoothed": [v if math.isfinite(v) else None for v in result.smoothed],
            "suggestion": result.suggestion, "min_loss": min(finite)}


def measure_lr_find(config: TrainConfig, extras: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """LR range test at the run's weight decay, from the same initial weights as its training."""
    data = load_data(config.data)
    train_feed, _ = feeds(config, data)
    start = extras.get("lr_find_start", 1e-4)
    with threads(config.threads):
        torch.manual_seed(config.seed)  # as run.train does before building the model
        model = build_model(config.model, num_classes=len(data.classes))
        optimizer = build_optimizer(config.optimizer, model.parameters(), lr=start, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        try:
            curve = range_test(model, optimizer, train_feed, start_lr=start, end_lr=extras.get("lr_find_end", 10.0),
                               steps=extras.get("lr_find_steps", 100))
        except ValueError as err:  # too few points to suggest anything: keep the training, record why
            return {"lr_find_error": str(err)}
    return {"lr_find": curve, "lr_find_min_loss": curve["min_loss"], "lr_find_suggestion": curve["suggestion"]}


@torch.no_grad()
def measure_forgetting(config: TrainConfig, extras: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """Loss of the trained model on every batch of its last epoch, in the order it saw them.

    ``recent_loss``: mean over the last 10% of those batches; ``earlier_loss``: over the
    first half. A model that forgets fits recent batches better than earlier ones, and the
    earlier ones no better than unseen test data.
    """
    data = load_data(config.data)
    train_feed, _ = feeds(config, data)
    state = ckpt.load(run_dir / CHECKPOINT)
    with threads(config.threads):
        model = build_model(config.model, num_classes=len(data.classes))
        model.load_state_dict(state["model"])
        model.eval()
        losses = [F.cross_entropy(model(x), y).item() for x, y in train_feed(config.epochs - 1)]
    n = len(losses)
    return {"recent_loss": statistics.fmean(losses[-max(1, n // 10):]),
            "earlier_loss": statistics.fmean(losses[:max(1, n // 2)]),
            "forgetting": {"batch_losses": losses}}


BEFORE: dict[str, Measure] = {"lr_find": measure_lr_find}
AFTER: dict[str, Measure] = {"forgetting": measure_forgetting}
