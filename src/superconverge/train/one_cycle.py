"""``fit_one_cycle``: the default recipe in one call — 1cycle with cyclical momentum."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from superconverge.schedules import one_cycle
from superconverge.train.feed import Feed
from superconverge.train.loop import FitOptions, fit, steps_per_epoch
from superconverge.train.records import History
from superconverge.train.runtime import build_optimizer


def fit_one_cycle(
    model: nn.Module,
    train: Feed,
    *,
    epochs: int,
    max_lr: float,
    test: Feed | None = None,
    optimizer: str = "sgd",
    weight_decay: float = 5e-4,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    options: FitOptions = FitOptions(),
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> History:
    """Train with 1cycle: LR ``max_lr/div -> max_lr -> ...`` and momentum ``0.95 -> 0.85 -> 0.95``.

    The optimizer is built by name (sgd, nesterov, adam, adamw, nadam); for Adam-family
    optimizers the momentum curve drives beta1.

    >>> import torch
    >>> from superconverge.train.feed import ArrayFeed
    >>> x = torch.randint(0, 255, (64, 8, 8, 3), dtype=torch.uint8); y = torch.arange(64) % 10
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 10))
    >>> h = fit_one_cycle(net, ArrayFeed(x, y, 16), epochs=2, max_lr=0.01,
    ...                   options=FitOptions(progress=False, precision="fp32"))
    >>> len(h.steps), len(h.epochs)
    (8, 2)
    """
    total = epochs * steps_per_epoch(train, options.accumulate)
    policy = one_cycle(total, max_lr, pct_start=pct_start, div_factor=div_factor,
                       final_div_factor=final_div_factor, base_momentum=base_momentum,
                       max_momentum=max_momentum)
    opt = build_optimizer(optimizer, model.parameters(), lr=max_lr, momentum=max_momentum,
                          weight_decay=weight_decay)
    return fit(model, opt, policy, train, epochs=epochs, test=test, options=options, run_dir=run_dir,
               resume=resume)
